"""Published SAEs (``SAE.from_pretrained``, with an offline message that names the release) and the
check that an SAE fits a model before any work is done with it."""

from __future__ import annotations

from typing import Any


class SAEMismatchError(ValueError):
    """An SAE does not fit the model it is used with (width or hook point)."""


class SAEUnavailableError(RuntimeError):
    """A published SAE could not be fetched (offline, or an unknown release/id)."""


def check_sae_fits(sae: Any, hooked: Any, hook_name: str | None = None) -> None:
    """Refuse an SAE whose input width differs from the model's ``d_model``, or whose hook point the
    model does not have. Cheap: call it before any heavy work."""
    d_in, d_model = int(sae.cfg.d_in), int(hooked.cfg.d_model)
    if d_in != d_model:
        raise SAEMismatchError(
            f"the SAE reads vectors of width d_in={d_in} but the model's residual stream has "
            f"d_model={d_model}; it was trained for a different model"
        )
    name = hook_name or sae.cfg.metadata.hook_name
    if name not in hooked.hook_dict:
        raise SAEMismatchError(f"the model has no hook point {name!r} (it has {hooked.cfg.n_layers} blocks)")


def load_published_sae(release: str, sae_id: str, device: str = "cpu") -> Any:
    """``SAE.from_pretrained(release, sae_id)``, with a message naming the release when it cannot be
    fetched (e.g. offline)."""
    from huggingface_hub.errors import LocalEntryNotFoundError
    from sae_lens import SAE

    try:
        return SAE.from_pretrained(release, sae_id, device=device)
    except (LocalEntryNotFoundError, OSError) as err:
        raise SAEUnavailableError(
            f"could not fetch SAE {sae_id!r} of release {release!r} (offline, or not in the "
            f"local Hugging Face cache): {err}"
        ) from err
    except ValueError as err:  # sae-lens raises ValueError for an unknown release or id
        raise SAEUnavailableError(
            f"sae-lens does not know SAE {sae_id!r} of release {release!r}: {err}"
        ) from err
