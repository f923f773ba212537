"""`hamgara serve`: the exported voice over HTTP, with a page to try it (FastAPI + uvicorn)."""
