"""Loading policy models (embedded default, local directory or Hugging Face id) and building tiny ones."""

from swarmnode.models.loading import EMBEDDED_DIR, load_model, resolve_model_source

__all__ = ["EMBEDDED_DIR", "load_model", "resolve_model_source"]
