"""The HTTP API (FastAPI): routers, schemas, auth, problem-details errors."""
