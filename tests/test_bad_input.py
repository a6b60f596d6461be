"""The bad-input matrix (SPEC §6): every user mistake is one paragraph, exit code 2, no traceback,
a message naming the offending option or path, and nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from conftest import TINY_WNIDS, run_cli

MT = ["mixtrain", "--model", "resnet18", "--img-size", "16", "--epochs", "1", "-b", "16"]
MTG = ["mixtraining", "--img-size", "16", "--epochs-ssl", "1", "--epochs-sl", "1", "-b", "16"]


def _cifar(req, tmp: Path) -> Path:
    return req.getfixturevalue("cifar10_root")


def _garbage_cifar(req, tmp: Path) -> Path:
    root = _cifar(req, tmp)
    (root / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"\x80\x02garbage")
    return root


def _truncated_cifar(req, tmp: Path) -> Path:
    root = _cifar(req, tmp)
    path = root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:300])
    return root


def _corrupt_svhn(req, tmp: Path) -> Path:
    root = req.getfixturevalue("svhn_root")
    (root / "train_32x32.mat").write_bytes(b"MATLAB 5.0 garbage")
    return root


def _bad_jpeg(req, tmp: Path) -> Path:
    root = req.getfixturevalue("tinyimagenet_root")
    img = root / "tiny-imagenet-200" / "train" / TINY_WNIDS[0] / "images" / f"{TINY_WNIDS[0]}_1.JPEG"
    img.write_bytes(b"\xff\xd8 not a jpeg")
    return root


def _empty_dir(req, tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _yaml(text: str) -> Callable:
    def make(req, tmp: Path) -> Path:
        (tmp / "c.yaml").write_text(text)
        return tmp / "c.yaml"
    return make


def _not_a_run(req, tmp: Path) -> Path:
    (tmp / "somewhere").mkdir()
    return tmp / "somewhere"


# (id, argv with {p} = the prepared path, how to prepare it, must appear in stderr x 2)
CASES = [
    # names: dataset, model, op, config key, YAML
    ("unknown-dataset", [*MT, "--data", "cifar-10"], None, "--data", "unknown dataset"),
    ("unknown-model", [*MT, "--model", "resnet19"], None, "--model", "resnet18"),
    ("unknown-op", [*MT, "--op", "blend"], None, "--op", "must be one of cutmix, mixup"),
    ("unknown-config-key", [*MT, "-c", "{p}"], _yaml("epohcs: 3\n"), "{p}", "epohcs"),
    ("malformed-yaml", [*MT, "-c", "{p}"], _yaml("epochs: [1\n"), "{p}", "not valid YAML"),
    ("yaml-not-a-mapping", [*MT, "-c", "{p}"], _yaml("- 1\n"), "{p}", "mapping"),
    ("yaml-wrong-type", [*MT, "-c", "{p}"], _yaml("batch_size: many\n"), "batch_size",
     "must be int"),
    ("missing-config", [*MT, "-c", "{p}/nope.yaml"], _empty_dir, "nope.yaml",
     "does not exist"),
    # data roots and files
    ("missing-data", [*MT, "--data", "cifar10", "--data-dir", "{p}"], _empty_dir, "{p}",
     "--download"),
    ("empty-imagefolder", [*MT, "--data", "imagefolder", "--data-dir", "{p}"], _empty_dir,
     "{p}", "image folder"),
    ("garbage-cifar", [*MT, "--data", "cifar10", "--data-dir", "{p}"], _garbage_cifar,
     "data_batch_2", "corrupt"),
    ("truncated-cifar", [*MT, "--data", "cifar10", "--data-dir", "{p}"], _truncated_cifar,
     "test_batch", "truncated"),
    ("corrupt-svhn", [*MT, "--data", "svhn", "--data-dir", "{p}"], _corrupt_svhn,
     "train_32x32.mat", "corrupt or truncated"),
    ("undecodable-jpeg", [*MT, "--data", "tinyimagenet", "--data-dir", "{p}"], _bad_jpeg,
     "_1.JPEG", "cannot decode"),
    # values out of range
    ("epochs-0", [*MT, "--epochs", "0"], None, "--epochs", "out of range"),
    ("fraction-above-1", [*MT, "--data-fraction", "1.5"], None, "--data-fraction",
     "out of range"),
    ("fraction-0", [*MT, "--data-fraction", "0"], None, "--data-fraction", "out of range"),
    ("lr-negative", [*MT, "--lr", "-1"], None, "--lr", "out of range"),
    ("min-lr-above-lr", [*MT, "--min-lr", "0.1", "--lr", "0.01"], None, "--min-lr", "larger"),
    ("batch-0", [*MT, "-b", "0"], None, "--batch-size", "out of range"),
    ("batch-above-dataset", [*MT, "-b", "5000"], None, "--batch-size",
     "larger than the training set"),
    ("img-size-4", [*MT, "--img-size", "4"], None, "--img-size", "out of range"),
    ("cutmix-area-1", [*MT, "--cutmix-area", "1.0"], None, "--cutmix-area", "out of range"),
    ("naive-fraction-0", [*MT, "--naive-fraction", "0"], None, "--naive-fraction",
     "out of range"),
    ("thresholds-choice", [*MT, "--thresholds", "ema"], None, "--thresholds",
     "must be one of cumulative, last"),
    ("r3-from-choice", [*MT, "--r3-from", "mixed"], None, "--r3-from",
     "must be one of unmixed, all"),
    ("r1-entry-choice", [*MT, "--r1-entry", "always"], None, "--r1-entry",
     "must be one of loss, correct"),
    ("amp-dtype-choice", [*MT, "--amp-dtype", "float8"], None, "--amp-dtype", "must be one of"),
    ("fp16-on-cpu", [*MT, "--amp", "--amp-dtype", "float16", "--device", "cpu"], None,
     "--amp-dtype", "not supported on the CPU"),
    ("device-missing", [*MT, "--device", "cuda:7"], None, "--device", "cuda"),
    # what the model cannot do
    ("cutmix-on-1x1-grid", [*MT, "--img-size", "8"], None, "--op cutmix", "1x1"),
    ("patch-not-dividing", [*MT, "--model", "vit_tiny_patch16_224", "--patch-size", "5"],
     None, "--patch-size", "multiple"),
    ("patch-on-a-cnn", [*MT, "--patch-size", "4"], None, "--patch-size", "ViT/Swin"),
    ("mixtrain-multitask", [*MT, "--data", "digits,synthetic"], None, "--data", "one task"),
    ("resume-not-a-run", ["mixtrain", "--resume", "{p}"], _not_a_run, "{p}",
     "not a mixkit run directory"),
    # MixTraining's rho, alpha, lambda, epochs, objective
    ("rho-above-1", [*MTG, "--rho", "1.5"], None, "--rho", "out of range"),
    ("rho-negative", [*MTG, "--rho", "-0.5"], None, "--rho", "out of range"),
    ("alpha-negative", [*MTG, "--alpha", "-0.1"], None, "--alpha", "out of range"),
    ("lam-above-1", [*MTG, "--lam", "2"], None, "--lam", "out of range"),
    ("epochs-ssl-negative", [*MTG, "--epochs-ssl", "-1"], None, "--epochs-ssl",
     "out of range"),
    ("epochs-sl-0", [*MTG, "--epochs-sl", "0"], None, "--epochs-sl", "out of range"),
    ("mask-ratio-1", [*MTG, "--mask-ratio", "1.0"], None, "--mask-ratio", "out of range"),
    ("mask-ratio-leaves-nothing", [*MTG, "--mask-ratio", "0.99"], None, "--mask-ratio",
     "no visible patch"),
    ("mix-forward-choice", [*MTG, "--mix-forward", "twice"], None, "--mix-forward",
     "must be one of shared, separate"),
    ("mae-on-a-cnn", [*MTG, "--model", "resnet18"], None, "--model", "ViT"),
    ("unknown-ssl-data", [*MTG, "--ssl-data", "imagenet"], None, "--ssl-data",
     "unknown dataset"),
    ("multitask-streamed", [*MTG, "--data", "digits,imagefolder"], None, "--data",
     "in-memory"),
    ("multitask-repeated", [*MTG, "--data", "digits,digits"], None, "--data", "distinct"),
    ("min-lr-above-peak", [*MTG, "--min-lr", "0.01"], None, "--min-lr",
     "larger than the peak"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_matrix(case, request, tmp_path: Path, capsys) -> None:
    _, argv, prepare, names, what = case
    path = prepare(request, tmp_path) if prepare else tmp_path
    fill = [a.replace("{p}", str(path)) for a in argv]
    runs = tmp_path / "runs"
    code, _, err = run_cli([*fill, "--output", str(runs)] if "--resume" not in argv else fill,
                           capsys)
    assert code == 2, err
    assert err.startswith("error:") and "Traceback" not in err
    assert names.replace("{p}", str(path)) in err, err
    assert what in err, err
    assert not runs.exists()                     # nothing written for a bad command line


def test_the_matrix_has_at_least_30_cases() -> None:
    assert len(CASES) >= 30
