from pathlib import Path

from emgeom.book.layout import BookLayout
from emgeom.book.pages.workload import chapter_workload, render_workload

REPO = Path(__file__).resolve().parents[3]


def test_counts_follow_from_the_parameters(tmp_path: Path) -> None:
    (tmp_path / "q.yaml").write_text("- id: a\n  paraphrases: [x, y]\n- id: b\n  paraphrases: [z]\n")
    base = {
        "questions": str(tmp_path / "q.yaml"),
        "question_variant": "main",
        "n_samples": 5,
        "max_new_tokens": 7,
        "batch_size": 4,
    }
    ft = chapter_workload(
        "05_x",
        base
        | {
            "finetune_seeds": [0, 1],
            "control_data": ["a", "b"],
            "finetune_steps": 10,
            "first_order_steps": 2,
            "sgd_steps": 5,
        },
    )
    # 2 seeds x (3 sets + answer-start run + 3 SGD runs); 2 x (3 x 10 + 2 + 3 x 5) steps;
    # 2 x (3 sets + aligned) evaluations
    assert (ft["fine-tuning runs"], ft["optimiser steps"], ft["evaluations"]) == (14, 94, 8)
    assert ft["sampled answers"] == 8 * 3 * 5 and ft["judge requests"] == 2 * 8 * 3 * 5
    filt = chapter_workload(
        "06_x",
        base
        | {
            "seeds": [0],
            "dose_fractions": [0, 0.5],
            "removal_fractions": [0.1],
            "finetune_steps": 3,
            "set_size": 20,
        },
    )
    assert filt["fine-tuning runs"] == 2 + 1 + 3 and filt["judge requests"] == 2 * 6 * 15 + 20
    block = chapter_workload("08_x", base | {"seeds": [0, 1], "finetune_steps": 3})
    assert (block["fine-tuning runs"], block["optimiser steps"], block["evaluations"]) == (12, 36, 12)
    missing = chapter_workload(
        "06_x",
        base
        | {
            "questions": str(tmp_path / "none.yaml"),
            "seeds": [0],
            "dose_fractions": [0],
            "removal_fractions": [0.1],
            "finetune_steps": 1,
            "set_size": 2,
        },
    )
    assert missing["sampled answers"] is None and missing["judge requests"] is None


def test_every_real_profile_gets_a_table() -> None:
    text = render_workload(BookLayout(REPO))
    assert "Profile `gemma-2-2b`" in text and "Profile `llama-3.1-8b`" in text and "Profile `cpu`" not in text
