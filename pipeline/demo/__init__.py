"""The embedded demo corpus: a sentence grammar of our own, spoken by festival."""
