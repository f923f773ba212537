"""Reading and checking a user's corpus: metadata, audio facts, the row schema."""
