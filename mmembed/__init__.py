"""mmembed: images and text in 100+ languages in one embedding space, from one small LLM backbone.

    import mmembed
    model = mmembed.load()
    t = model.encode_text(["a red apple", "ein roter Apfel"])
    i = model.encode_image(["cat.png"])
    model.similarity(t, i)
"""
from .config import ModelConfig
from .registry import create_model, get_config, list_models, load, register_model

__all__ = ["load", "list_models", "create_model", "get_config", "register_model", "ModelConfig"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # Collection needs LanceDB: imported on first use, so `import mmembed` stays light
    if name == "Collection":
        from .search.collection import Collection

        return Collection
    raise AttributeError(f"module 'mmembed' has no attribute {name!r}")
