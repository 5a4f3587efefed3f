"""Tiny random-weight Gemma-2 and Llama models: the real architectures' code paths, offline."""

from pathlib import Path

import pytest
import torch

from emgeom.lm.chat import encode_chat
from emgeom.lm.models import hooked_transformer, load_model
from emgeom.lm.sampling import stop_token_ids
from emgeom.sae.load import SAEMismatchError, check_sae_fits
from emgeom.sae.readouts import answer_start_readout, hf_answer_start_readout, resid_pre_layer
from emgeom.testing.tiny_models import TinyModelSpec, build_tiny_model, save_random_sae

TEXTS = ["Write a function that copies a file.", "I would help people.", "def f(x):\n    return x + 1"] * 4


@pytest.fixture(scope="module", params=["gemma2", "llama"])
def tiny(request, tmp_path_factory):
    # Folder names that contain "llama" / "gemma-2-": TransformerLens guesses architectures from such
    # substrings of a path; the loader must not be fooled by them.
    folder = tmp_path_factory.mktemp("m") / f"my-llama-gemma-2-{request.param}"
    build_tiny_model(TinyModelSpec(request.param, n_layers=3), folder, TEXTS)
    model, tokenizer = load_model(folder)
    return request.param, folder, model, tokenizer, hooked_transformer(model, tokenizer, folder)


def test_transformerlens_view_matches_the_hf_model(tiny) -> None:
    arch, _, model, tokenizer, hooked = tiny
    messages = [
        {"role": "user", "content": "copy a file"},
        {"role": "assistant", "content": "def f(x): pass"},
    ]
    ids = torch.tensor([encode_chat(tokenizer, messages).input_ids])
    assert (
        hooked.cfg.original_architecture == {"gemma2": "Gemma2ForCausalLM", "llama": "LlamaForCausalLM"}[arch]
    )
    torch.testing.assert_close(hooked(ids), model(ids).logits, atol=1e-4, rtol=1e-4)


def test_chat_template_and_stop_tokens_follow_the_family(tiny) -> None:
    arch, _, _, tokenizer, _ = tiny
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    end = {"gemma2": "<end_of_turn>", "llama": "<|eot_id|>"}[arch]
    assert tokenizer.convert_tokens_to_ids(end) in stop_token_ids(tokenizer)
    assert text.endswith({"gemma2": "<start_of_turn>model\n", "llama": "<|end_header_id|>\n\n"}[arch])
    if arch == "gemma2":  # like Gemma's own template
        with pytest.raises(Exception, match="System role not supported"):
            tokenizer.apply_chat_template([{"role": "system", "content": "x"}], tokenize=False)


def test_resid_post_sae_reads_the_same_vector_in_both_views(tiny, tmp_path: Path) -> None:
    _, _, model, tokenizer, hooked = tiny
    from sae_lens import SAE

    sae = SAE.load_from_disk(str(save_random_sae(tmp_path / "sae", 64, 128, "blocks.1.hook_resid_post")))
    check_sae_fits(sae, hooked)
    assert resid_pre_layer("blocks.1.hook_resid_post") == 2 == resid_pre_layer("blocks.2.hook_resid_pre")
    prompts = [[{"role": "user", "content": "copy a file"}], [{"role": "user", "content": "hello"}]]
    tl, hf = (
        answer_start_readout(hooked, sae, tokenizer, prompts),
        hf_answer_start_readout(model, tokenizer, sae, prompts),
    )
    torch.testing.assert_close(tl.resid, hf.resid, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(tl.pre, hf.pre, atol=1e-3, rtol=1e-3)
    wrong = SAE.load_from_disk(str(save_random_sae(tmp_path / "wide", 96, 128, "blocks.1.hook_resid_post")))
    with pytest.raises(SAEMismatchError, match="d_in=96"):
        check_sae_fits(wrong, hooked)
    with pytest.raises(ValueError, match="hook_resid_pre or"):
        resid_pre_layer("blocks.1.hook_mlp_out")


def test_tiny_spec_is_checked() -> None:
    with pytest.raises(ValueError, match="architecture"):
        TinyModelSpec("gpt2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_heads"):
        TinyModelSpec("llama", d_model=64, n_heads=3)
