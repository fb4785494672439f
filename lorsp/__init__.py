"""lorsp: Low-Rank visual Spike Prompting, from training to neuromorphic hardware.

    >>> import lorsp
    >>> model = lorsp.load("runs/demo/model.pt")
    >>> logits, prompt = model(x), model.prompt(x)

Registries (timm style): :func:`lorsp.data.list_datasets`,
:func:`lorsp.backbones.list_backbones`, :func:`lorsp.prompts.list_prompts`.
"""
from lorsp.plumbing.errors import LorspError
from lorsp.model import PromptedClassifier, build_model, load

__version__ = "0.1.0"
__all__ = ["LorspError", "PromptedClassifier", "build_model", "load", "__version__"]
