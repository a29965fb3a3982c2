"""Dialogue writers: the template writer (default), a local LLM and an OpenAI-compatible endpoint."""
