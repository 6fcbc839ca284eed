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
