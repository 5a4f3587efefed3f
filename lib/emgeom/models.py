"""One loader for every model the book uses: a local folder (the organism, a test model) or a hub id.

``load_model`` gives the Hugging Face model and tokenizer (what peft fine-tunes and what generates
samples); ``hooked_transformer`` gives the TransformerLens view of the same weights (what SAEs read).
Offline, a hub id that is not in the local cache fails at once with a message naming it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging


class ModelUnavailableError(RuntimeError):
    """A model could not be loaded (no such folder, or a hub id that cannot be fetched)."""


def resolve_ref(ref: str | os.PathLike[str]) -> str:
    """An absolute path for an existing local folder; the hub id unchanged otherwise.

    A reference that looks like a path (starts with ``/``, ``.`` or ``~``) but is not a folder is an
    error rather than a hub lookup.
    """
    text = os.fspath(ref)
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if text.startswith(("/", ".", "~")) or isinstance(ref, Path):
        raise ModelUnavailableError(f"no model folder at {path}")
    return text


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def load_model(
    ref: str | os.PathLike[str],
    *,
    device: str | None = None,
    dtype: torch.dtype | None = None,
    device_map: str | dict[str, Any] | None = None,
    progress: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``(model, tokenizer)`` from a local folder or a hub id, in eval mode.

    ``device_map="auto"`` spreads a large model over the available GPUs (accelerate); otherwise the
    model goes to ``device`` (default: CPU). ``progress`` shows the weight-loading bars.
    """
    name = resolve_ref(ref)
    (hf_logging.enable_progress_bar if progress else hf_logging.disable_progress_bar)()
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, device_map=device_map)
    except OSError as err:  # huggingface_hub's offline/not-found errors are OSErrors
        hint = " (HF_HUB_OFFLINE is set: only models already in the local cache load)" if _offline() else ""
        raise ModelUnavailableError(f"could not load model {name!r}{hint}: {err}") from err
    if getattr(model.config, "loss_type", None) is None:
        model.config.loss_type = "ForCausalLM"  # what every causal LM uses; silences a warning per forward
    if device_map is None:
        model = model.to(device or "cpu")
    model.eval()
    return model, tokenizer


def hooked_transformer(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, ref: str | os.PathLike[str]
) -> Any:
    """The TransformerLens ``HookedTransformer`` of ``model``'s weights, unprocessed.

    No layer-norm folding or weight centring, so the residual stream is the Hugging Face model's own
    (published SAEs are trained on unprocessed activations). Works offline for a local folder, which
    ``HookedTransformer.from_pretrained`` does not (shared/README §1).
    """
    from transformer_lens import HookedTransformer, loading  # heavy import, only where needed

    name = resolve_ref(ref)
    cfg = loading.get_pretrained_model_config(
        name, device=str(model.device), dtype=model.dtype, n_ctx=_context_length(model)
    )
    state = loading.get_pretrained_state_dict(name, cfg, hf_model=model, dtype=model.dtype)
    with warnings.catch_warnings():
        # TL 3.9 steers users to TransformerBridge; sae-lens 6.54 (pinned as its pair) trains SAEs on a
        # HookedTransformer, so the book keeps one view of the model for both.
        warnings.filterwarnings(
            "ignore", message="HookedTransformer is deprecated", category=DeprecationWarning
        )
        hooked = HookedTransformer(cfg, tokenizer, move_to_device=True, default_padding_side="right")
    hooked.load_and_process_state_dict(
        state,
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    hooked.eval()
    return hooked


def _context_length(model: PreTrainedModel) -> int | None:
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(model.config, attr, None)
        if isinstance(value, int):
            return value
    return None
