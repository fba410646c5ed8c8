"""loadlab: FastAPI on Uvicorn against Flask on Gunicorn, measured under load."""

__version__ = "0.1.0"
