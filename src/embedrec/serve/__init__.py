"""The HTTP service: ``create_app(model_dir)`` builds a FastAPI app; ``embedrec serve`` runs it."""

from embedrec.serve.app import create_app

__all__ = ["create_app"]
