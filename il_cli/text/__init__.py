"""RLHF on text: a language task shipped with the project and a tiny decoder-only transformer."""
