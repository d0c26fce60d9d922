"""The peers of `python -m bench drain` (Celery, Dramatiq). These modules run in the
bench-only virtualenv bench/.venv-peers, never in the project's."""
