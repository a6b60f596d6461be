"""The bad-input matrix (`docs/reliability.md`): every user mistake is one paragraph, exit code 2, no traceback,
a message naming the offending option or path, and nothing written."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from conftest import (TINY_WNIDS, rng_images, run_cli, write_cifar_batch, write_idx,
                      write_idx_dataset)

MT = ["mixtrain", "--model", "resnet18", "--img-size", "16", "--epochs", "1", "-b", "16"]
MTG = ["mixtraining", "--img-size", "16", "--epochs-ssl", "1", "--epochs-sl", "1", "-b", "16"]


def on(data: str, *extra: str) -> list[str]:
    """``mixkit mixtrain`` on dataset ``data`` read from the prepared root ``{p}``."""
    return [*MT, "--data", data, "--data-dir", "{p}", *extra]


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


def _idx(damage: Callable[[Path], None]) -> Callable:
    """A Fashion-MNIST root (raw IDX files, torchvision layout) with one file damaged."""
    def make(req, tmp: Path) -> Path:
        raw = tmp / "FashionMNIST" / "raw"
        write_idx_dataset(raw, gz=False)
        damage(raw)
        return tmp
    return make


def _cut(raw: Path) -> None:
    f = raw / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])


def _bad_gz(raw: Path) -> None:
    (raw / "t10k-images-idx3-ubyte").unlink()
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")


def _count_mismatch(raw: Path) -> None:
    write_idx(raw / "train-labels-idx1-ubyte", np.zeros(19, dtype=np.uint8))


def _label_range(raw: Path) -> None:
    write_idx(raw / "t10k-labels-idx1-ubyte", np.full(10, 12, dtype=np.uint8))


def _swapped(raw: Path) -> None:
    a, b = raw / "train-images-idx3-ubyte", raw / "train-labels-idx1-ubyte"
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)


def _empty_dir(req, tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _yaml(text: str) -> Callable:
    def make(req, tmp: Path) -> Path:
        (tmp / "c.yaml").write_text(text)
        return tmp / "c.yaml"
    return make


def _stopped_run(damage: str) -> Callable:
    """A finished small run made to look interrupted, then its last.pt damaged."""
    def make(req, tmp: Path) -> Path:
        code, _, err = run_cli(["mixtrain", "--data", "digits", "--data-fraction", "0.05",
                                "--img-size", "16", "--model", "mobilenetv2_035", "-b", "16",
                                "--epochs", "1", "--no-baseline", "--output", str(tmp / "prep"),
                                "--experiment", "D", "--keep-checkpoint"],
                               req.getfixturevalue("capsys"))
        assert code == 0, err
        run = tmp / "prep" / "D"
        (run / "summary.json").unlink()
        ckpt = run / "last.pt"
        if damage == "truncated":
            ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
        elif damage == "garbage":
            ckpt.write_bytes(b"not a checkpoint at all")
        elif damage == "missing":
            ckpt.unlink()
        return run
    return make


def _not_a_run(req, tmp: Path) -> Path:
    (tmp / "somewhere").mkdir()
    return tmp / "somewhere"


# --- hostile and wrong inputs (the hardening issue) -------------------------------------------


def _huge_array_cifar(req, tmp: Path) -> Path:
    """A 100-byte pickle whose allowed ``numpy.ndarray`` global asks for a 100 GB array."""
    class Huge:
        def __reduce__(self):
            return (np.ndarray, ((100_000, 100_000, 10),))
    root = _cifar(req, tmp)
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(
        pickle.dumps({b"data": Huge(), b"labels": [0]}, protocol=2))
    return root


def _cifar_labels(labels) -> Callable:
    def make(req, tmp: Path) -> Path:
        root = _cifar(req, tmp)
        n = len(labels) if isinstance(labels, list) else 8
        write_cifar_batch(root / "cifar-10-batches-py" / "data_batch_3",
                          rng_images(np.random.default_rng(0), n).reshape(n, -1), labels,
                          b"labels")
        return root
    return make


def _svhn_with(x_dtype=np.uint8, label: int | None = None) -> Callable:
    def make(req, tmp: Path) -> Path:
        import scipy.io

        root = req.getfixturevalue("svhn_root")
        x = rng_images(np.random.default_rng(0), 4).transpose(2, 3, 1, 0)
        x = (x / 255.0).astype(x_dtype) if x_dtype != np.uint8 else x
        y = np.array([[1], [2], [3], [label if label is not None else 4]])
        scipy.io.savemat(str(root / "train_32x32.mat"), {"X": x, "y": y})
        return root
    return make


def _svhn_v73(req, tmp: Path) -> Path:
    root = req.getfixturevalue("svhn_root")
    head = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 ."
    (root / "test_32x32.mat").write_bytes(head.ljust(116, b" ") + bytes(8) + b"\x00\x02IM"
                                          + bytes(512))
    return root


def _extra_wnids(req, tmp: Path) -> Path:
    root = req.getfixturevalue("tinyimagenet_root")
    ids = TINY_WNIDS + [f"n{k:08d}" for k in range(198)]          # 201 class ids
    (root / "tiny-imagenet-200" / "wnids.txt").write_text("\n".join(ids) + "\n")
    return root


def _png_bomb(req, tmp: Path) -> Path:
    """A valid 60-byte PNG header that declares 50,000 x 50,000 pixels."""
    import struct
    import zlib

    root = req.getfixturevalue("imagefolder_root")
    ihdr = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)
    chunk = lambda t, d: (struct.pack(">I", len(d)) + t + d  # noqa: E731
                          + struct.pack(">I", zlib.crc32(t + d)))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
    (root / "train" / "cat" / "3.png").write_bytes(png)
    return root


def _bad_png(req, tmp: Path) -> Path:
    root = req.getfixturevalue("imagefolder_root")
    (root / "train" / "dog" / "4.png").write_bytes(b"\x89PNG\r\n not really")
    return root


def _damaged_image(name: str, write) -> Callable:
    """The image folder with ``train/dog/<name>`` replaced by what ``write(path)`` writes."""
    def make(req, tmp: Path) -> Path:
        root = req.getfixturevalue("imagefolder_root")
        write(root / "train" / "dog" / name)
        return root
    return make


def _truncated_jpeg(path: Path) -> None:
    from PIL import Image

    path.unlink(missing_ok=True)
    jpg = path.with_suffix(".jpg")
    Image.new("RGB", (64, 48), (10, 200, 30)).save(jpg, quality=90)
    jpg.write_bytes(jpg.read_bytes()[:200])


def _png16(path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.full((20, 20), 40000, dtype=np.uint16)).save(path)


def _unreadable_class(req, tmp: Path) -> Path:
    root = req.getfixturevalue("imagefolder_root")
    for k in range(10):
        (root / "train" / "dog" / f"{k}.png").write_bytes(b"")
    return root


def _imagenet(tmp: Path, classes: int, flat_val: bool) -> Path:
    from conftest import solid_png

    root = tmp / "imagenet"
    for c in range(classes):
        wnid = f"n{c:08d}"
        (root / "train" / wnid).mkdir(parents=True)
        if c < 3:
            solid_png(root / "train" / wnid / "a.JPEG", (c * 60, 9, 9), 12)
        if not flat_val:
            (root / "val" / wnid).mkdir(parents=True)
    if flat_val:
        for k in range(5):
            solid_png(root / "val" / f"ILSVRC2012_val_{k:08d}.JPEG", (9, 9, 9), 12)
    return tmp


def _imagenet_flat(req, tmp: Path) -> Path:
    return _imagenet(tmp, 1000, flat_val=True)


def _imagenet_three(req, tmp: Path) -> Path:
    return _imagenet(tmp, 3, flat_val=False)


def _empty_class(req, tmp: Path) -> Path:
    root = req.getfixturevalue("imagefolder_root")
    (root / "train" / "emu").mkdir()
    (root / "train" / "emu" / "notes.txt").write_text("no images here")
    return root


def _big_yaml(req, tmp: Path) -> Path:
    (tmp / "c.yaml").write_text("epochs: 1\n" + "# padding\n" * 120_000)
    return tmp / "c.yaml"


ALIAS_BOMB = ('a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
              'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n'
              'epochs: *d\n')


# --- the surfaces of the last turn, under attack (#42) ----------------------------------------


def _special(kind: str, split: str = "train") -> Callable:
    """The image folder with ``<split>/dog/x.png`` a FIFO, a link to one, or a link to
    /dev/zero: real special files, which block or never end if opened and read."""
    def make(req, tmp: Path) -> Path:
        root = req.getfixturevalue("imagefolder_root")
        entry = root / split / "dog" / "x.png"
        if kind == "fifo":
            os.mkfifo(entry)
        elif kind == "fifo-link":
            os.mkfifo(tmp / "pipe")
            entry.symlink_to(tmp / "pipe")
        else:
            entry.symlink_to("/dev/zero")
        return root
    return make


def _named(raw: bytes) -> Callable:
    """The image folder with an undecodable file whose name is the bytes ``raw``."""
    def make(req, tmp: Path) -> Path:
        root = req.getfixturevalue("imagefolder_root")
        (root / "train" / "dog" / os.fsdecode(raw)).write_bytes(b"\x89PNG not an image")
        return root
    return make


def _crafted(**changes) -> Callable:
    """A stopped run whose ``last.pt`` has ``changes`` written into it (a crafted file that
    still loads with ``weights_only=True``)."""
    def make(req, tmp: Path) -> Path:
        import torch

        run = _stopped_run("none")(req, tmp)
        state = torch.load(run / "last.pt", weights_only=True)
        state.update(changes)
        torch.save(state, run / "last.pt")
        return run
    return make


def _stopped_folder_run(change: str) -> Callable:
    """A stopped run on an image folder, then the folder changed (an image added, removed)."""
    def make(req, tmp: Path) -> Path:
        from conftest import solid_png

        root = req.getfixturevalue("imagefolder_root")
        code, _, err = run_cli(["mixtrain", "--data", "imagefolder", "--data-dir", str(root),
                                "--img-size", "16", "--model", "mobilenetv2_035", "-b", "4",
                                "--workers", "0", "--epochs", "1", "--no-baseline",
                                "--output", str(tmp / "prep"), "--experiment", "F",
                                "--keep-checkpoint"], req.getfixturevalue("capsys"))
        assert code == 0, err
        (tmp / "prep" / "F" / "summary.json").unlink()
        if change == "added":
            solid_png(root / "train" / "dog" / "new.png", (1, 2, 3))
        else:
            (root / "train" / "dog" / "0.png").unlink()
        return tmp / "prep" / "F"
    return make


def _one_image_a_class(req, tmp: Path) -> Path:
    from conftest import solid_png

    for c in ("a", "b"):
        solid_png(tmp / "flat" / c / "0.png", (1, 2, 3))
    return tmp / "flat"


# (id, argv with {p} = the prepared path, how to prepare it, must appear in stderr x 2)
CASES = [
    # names: dataset, model, op, config key, YAML
    ("unknown-dataset", [*MT, "--data", "cifar-10"], None, "--data", "unknown dataset"),
    ("unknown-model", [*MT, "--model", "resnet19"], None, "--model", "resnet18"),
    ("unknown-op", [*MT, "--op", "blend"], None, "--op", "must be one of cutmix, mixup"),
    ("unknown-config-key", [*MT, "-c", "{p}"], _yaml("epohcs: 3\n"), "{p}", "epohcs"),
    ("config-of-the-other-command", [*MT, "-c", "{p}"], _yaml("epochs_ssl: 3\n"), "{p}",
     "mixkit mixtraining -c"),
    ("malformed-yaml", [*MT, "-c", "{p}"], _yaml("epochs: [1\n"), "{p}", "not valid YAML"),
    ("yaml-not-a-mapping", [*MT, "-c", "{p}"], _yaml("- 1\n"), "{p}", "mapping"),
    ("yaml-wrong-type", [*MT, "-c", "{p}"], _yaml("batch_size: many\n"), "batch_size",
     "must be int"),
    ("missing-config", [*MT, "-c", "{p}/nope.yaml"], _empty_dir, "nope.yaml", "does not exist"),
    # data roots and files
    ("missing-data", on("cifar10"), _empty_dir, "{p}", "--download"),
    ("empty-imagefolder", on("imagefolder"), _empty_dir, "{p}", "image folder"),
    ("garbage-cifar", on("cifar10"), _garbage_cifar, "data_batch_2", "corrupt"),
    ("truncated-cifar", on("cifar10"), _truncated_cifar, "test_batch", "truncated"),
    ("corrupt-svhn", on("svhn"), _corrupt_svhn, "train_32x32.mat", "corrupt or truncated"),
    ("undecodable-jpeg", on("tinyimagenet"), _bad_jpeg, "_1.JPEG", "cannot decode"),
    ("missing-fashionmnist", on("fashionmnist"), _empty_dir,
     "{p}", "apt-get install dataset-fashion-mnist"),
    ("idx-truncated", on("fashionmnist"), _idx(_cut),
     "train-images-idx3-ubyte", "truncated"),
    ("idx-corrupt-gzip", on("fashionmnist"), _idx(_bad_gz),
     "t10k-images-idx3-ubyte.gz", "corrupt"),
    ("idx-count-mismatch", on("fashionmnist"),
     _idx(_count_mismatch), "train-labels-idx1-ubyte", "19 labels for the 20 images"),
    ("idx-label-out-of-range", on("fashionmnist"),
     _idx(_label_range), "t10k-labels-idx1-ubyte", "label 12 is outside"),
    ("idx-wrong-magic", on("fashionmnist"), _idx(_swapped),
     "train-images-idx3-ubyte", "magic number 0x00000801, expected 0x00000803"),
    # values out of range
    ("min-lr-above-lr", [*MT, "--min-lr", "0.1", "--lr", "0.01"], None, "--min-lr", "larger"),
    ("batch-0", [*MT, "-b", "0"], None, "--batch-size", "out of range"),
    ("batch-above-dataset", [*MT, "-b", "5000"], None, "--batch-size",
     "larger than the training set"),
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
    ("compile-backend-unknown", [*MT, "--torchcompile", "--compile-backend", "nope"], None,
     "--compile-backend", "not a torch.compile backend"),
    ("compile-mode-needs-inductor", [*MT, "--torchcompile", "--compile-backend", "aot_eager",
                                     "--compile-mode", "max-autotune"], None, "--compile-mode",
     "needs --compile-backend inductor"),
    ("compile-mode-choice", [*MT, "--compile-mode", "fast"], None, "--compile-mode",
     "must be one of"),
    # what the model cannot do
    ("cutmix-on-1x1-grid", [*MT, "--op", "cutmix", "--img-size", "8"], None, "--op cutmix", "1x1"),
    ("patch-not-dividing", [*MT, "--model", "vit_tiny_patch16_224", "--patch-size", "5"],
     None, "--patch-size", "multiple"),
    ("patch-on-a-cnn", [*MT, "--patch-size", "4"], None, "--patch-size", "ViT/Swin"),
    ("mixtrain-multitask", [*MT, "--data", "digits,synthetic"], None, "--data", "one task"),
    ("resume-not-a-run", ["mixtrain", "--resume", "{p}"], _not_a_run, "{p}",
     "not a mixkit run directory"),
    ("resume-truncated-checkpoint", ["mixtrain", "--resume", "{p}"], _stopped_run("truncated"),
     "last.pt", "truncated or corrupt"),
    ("resume-garbage-checkpoint", ["mixtrain", "--resume", "{p}"], _stopped_run("garbage"),
     "last.pt", "truncated or corrupt"),
    ("resume-missing-checkpoint", ["mixtrain", "--resume", "{p}"], _stopped_run("missing"),
     "last.pt", "no checkpoint"),
    # MixTraining's rho, alpha, lambda, epochs, objective
    ("mask-ratio-leaves-nothing", [*MTG, "--mask-ratio", "0.99"], None, "--mask-ratio",
     "no visible patch"),
    ("mix-forward-choice", [*MTG, "--mix-forward", "twice"], None, "--mix-forward",
     "must be one of shared, separate"),
    ("mae-on-a-cnn", [*MTG, "--model", "resnet18"], None, "--model", "ViT"),
    ("unknown-ssl-data", [*MTG, "--ssl-data", "imagenet21k"], None, "--ssl-data", "unknown dataset"),
    ("imagenet-missing", [*MT, "--data", "imagenet"], None, "image-net.org", "imagenet"),
    ("multitask-streamed", [*MTG, "--data", "digits,imagefolder"], None, "--data", "in-memory"),
    ("multitask-repeated", [*MTG, "--data", "digits,digits"], None, "--data", "distinct"),
    ("min-lr-above-peak", [*MTG, "--min-lr", "0.01"], None, "--min-lr", "larger than the peak"),
    # run names and files: nothing outside --output, no flag from a file, bounded YAML
    ("experiment-dotdot", [*MT, "--experiment", "..", "--overwrite"], None, "--experiment",
     "not a plain run name"),
    ("experiment-dot", [*MT, "--experiment", ".", "--overwrite"], None, "--experiment",
     "not a plain run name"),
    ("experiment-parent", [*MT, "--experiment", "../x"], None, "--experiment",
     "not a plain run name"),
    ("experiment-absolute", [*MT, "--experiment", "/tmp/elsewhere"], None, "--experiment",
     "not a plain run name"),
    ("experiment-in-yaml", [*MT, "-c", "{p}"], _yaml("experiment: ../../x\n"), "--experiment",
     "not a plain run name"),
    ("overwrite-in-yaml", [*MT, "-c", "{p}"], _yaml("experiment: e\noverwrite: true\n"), "{p}",
     "only accepted as a command-line flag"),
    ("resume-in-yaml", [*MT, "-c", "{p}"], _yaml("resume: somewhere\n"), "{p}",
     "only accepted as a command-line flag"),
    ("yaml-alias-bomb", [*MT, "-c", "{p}"], _yaml(ALIAS_BOMB), "{p}", "aliases"),
    ("yaml-too-large", [*MT, "-c", "{p}"], _big_yaml, "{p}", "at most"),
    ("yaml-huge-value-is-not-echoed", [*MT, "-c", "{p}"], _yaml("epochs: " + "9" * 5000 + "x\n"),
     "epochs", "must be int"),
    # numbers that pass every comparison
    ("fraction-nan", [*MT, "--data-fraction", "nan"], None, "--data-fraction", "not a finite"),
    ("lr-nan", [*MT, "--lr", "nan"], None, "--lr", "not a finite"),
    ("lr-inf", [*MT, "--lr", "inf"], None, "--lr", "not a finite"),
    ("alpha-nan", [*MTG, "--alpha", "nan"], None, "--alpha", "not a finite"),
    # hostile or wrong data
    ("cifar-huge-array", on("cifar10"), _huge_array_cifar, "data_batch_1", "larger than the"),
    ("cifar-label-10", on("cifar10"),
     _cifar_labels([0, 1, 2, 3, 4, 5, 6, 10]), "data_batch_3", "label 10 is outside"),
    ("cifar-label-negative", on("cifar10"),
     _cifar_labels([0, 1, 2, 3, 4, 5, 6, -1]), "data_batch_3", "label -1 is outside"),
    ("cifar-label-strings", on("cifar10"),
     _cifar_labels(["cat"] * 8), "data_batch_3", "flat list of integers"),
    ("cifar-label-none", on("cifar10"), _cifar_labels(None),
     "data_batch_3", "flat list of integers"),
    ("cifar-label-2d", on("cifar10"),
     _cifar_labels(np.zeros((8, 2), dtype=np.int64)), "data_batch_3", "flat list of integers"),
    ("svhn-float-pixels", on("svhn"),
     _svhn_with(np.float32), "train_32x32.mat", "pixels must be integers"),
    ("svhn-label-11", on("svhn"), _svhn_with(label=11),
     "train_32x32.mat", "label 11 is outside"),
    ("svhn-matlab-v73", on("svhn"), _svhn_v73, "test_32x32.mat", "v7.3"),
    ("tinyimagenet-201-wnids", on("tinyimagenet"), _extra_wnids, "wnids.txt", "201 class ids"),
    ("png-decompression-bomb", on("imagefolder", "--workers", "0"), _png_bomb, "3.png",
     "2500000000 pixels"),
    ("undecodable-png-with-workers", on("imagefolder", "--workers", "2"), _bad_png, "4.png",
     "Remove or replace that image file"),
    ("image-suffix-on-a-text-file", on("imagefolder", "--workers", "0"),
     _damaged_image("5.png", lambda p: p.write_text("hello, not an image")), "5.png",
     "cannot decode"),
    ("truncated-jpeg", on("imagefolder", "--workers", "0"), _damaged_image("6.png",
                                                                       _truncated_jpeg),
     "6.jpg", "cannot decode"),
    ("png-16-bit", on("imagefolder", "--workers", "0"), _damaged_image("7.png", _png16),
     "7.png", "8-bit"),
    ("zero-byte-image", on("imagefolder", "--workers", "0"),
     _damaged_image("8.png", lambda p: p.write_bytes(b"")), "8.png", "cannot decode"),
    ("class-of-unreadable-files", on("imagefolder", "--workers", "0"), _unreadable_class,
     "dog", "cannot decode"),
    ("rrc-scale-reversed", [*MT, "--scale", "1.0,0.5"], None, "--scale", "lo <= hi"),
    ("rrc-ratio-not-numbers", [*MT, "--ratio", "wide"], None, "--ratio", "two numbers"),
    ("imagenet-flat-val", [*MT, "--data", "imagenet", "--data-dir", "{p}"], _imagenet_flat,
     "no class folders", "valprep.sh"),
    ("imagenet-wrong-classes", [*MT, "--data", "imagenet", "--data-dir", "{p}"],
     _imagenet_three, "3 class folders", "--data imagefolder"),
    ("imagefolder-empty-class", on("imagefolder"),
     _empty_class, "emu", "no training images"),
    ("compare-unknown", [*MT, "--compare", "short,coreset"], None, "--compare",
     "short, skip, infobatch"),
    ("compare-repeated", [*MT, "--compare", "skip,skip"], None, "--compare", "distinct"),
    ("cutmix-img-size-off-grid", [*MT, "--op", "cutmix", "--img-size", "30"], None, "--img-size 30",
     "not a multiple"),
    # optimiser recipes (#25)
    ("opt-unknown", [*MT, "--opt", "lamb"], None, "--opt", "adamw, sgd"),
    ("sched-unknown", [*MT, "--sched", "poly"], None, "--sched", "cosine, step, multistep"),
    ("nesterov-with-adamw", [*MT, "--nesterov"], None, "--nesterov", "--opt sgd"),
    ("momentum-with-adamw", [*MT, "--momentum", "0.8"], None, "--momentum", "--opt sgd"),
    ("milestones-out-of-order", [*MT, "--epochs", "9", "--opt", "sgd", "--sched", "multistep",
                                 "--decay-milestones", "6,3"], None, "--decay-milestones",
     "increasing"),
    ("milestones-past-the-run", [*MT, "--epochs", "9", "--sched", "multistep",
                                 "--decay-milestones", "3,9"], None, "--decay-milestones 3,9",
     "inside the run"),
    ("milestones-not-numbers", [*MT, "--epochs", "9", "--sched", "multistep",
                                "--decay-milestones", "3,x"], None, "--decay-milestones",
     "comma-separated"),
    ("milestones-without-multistep", [*MT, "--decay-milestones", "3"], None,
     "--decay-milestones", "--sched multistep"),
    ("decay-epochs-past-the-run", [*MT, "--epochs", "9", "--sched", "step", "--decay-epochs",
                                   "9"], None, "--decay-epochs", "never decay"),
    ("ssl-milestones-past-its-span", [*MTG, "--epochs-ssl", "4", "--epochs-sl", "8",
                                      "--ssl-sched", "multistep", "--decay-milestones", "5"],
     None, "--epochs-ssl 4", "inside the run"),
    # --- #42: crop options, recipe, loggers, names, resume state, messages ------------------
    ("rrc-ratio-100", [*MT, "--ratio", "100,100"], None, "--ratio", "<= hi <= 10"),
    ("crop-pct-1e-9", [*MT, "--crop-pct", "1e-9"], None, "--crop-pct", "out of range"),
    ("crop-pct-1e-9-in-yaml", [*MT, "-c", "{p}"], _yaml("crop_pct: 1.0e-9\n"), "--crop-pct",
     "out of range"),
    ("crop-pct-0.001-at-64", [*MT, "--crop-pct", "0.001", "--img-size", "64"], None,
     "--crop-pct", "out of range"),
    ("nesterov-momentum-0", [*MT, "--opt", "sgd", "--nesterov", "--momentum", "0"], None,
     "--nesterov", "momentum above 0"),
    ("wandb-project-dotdot", [*MT, "--log-wandb", "--wandb-project", "../../etc"], None,
     "--wandb-project", "contains /"),
    ("wandb-project-3000-chars", [*MT, "--log-wandb", "--wandb-project", "p" * 3000], None,
     "--wandb-project", "is 3000 characters"),
    ("wandb-project-slashes-in-yaml", [*MT, "-c", "{p}"],
     _yaml("log_wandb: true\nwandb_project: a/b/c\n"), "--wandb-project", "contains /"),
    ("fifo-image-train-workers-0", on("imagefolder", "--workers", "0"), _special("fifo"),
     "x.png", "not a regular file"),
    ("fifo-image-val-workers-2", on("imagefolder", "--workers", "2"), _special("fifo", "val"),
     "x.png", "not a regular file"),
    ("link-to-fifo", on("imagefolder", "--workers", "2"), _special("fifo-link"), "x.png",
     "not a regular file"),
    ("link-to-dev-zero", on("imagefolder", "--workers", "0"), _special("zero"), "x.png",
     "not a regular file"),
    ("non-utf8-file-name", on("imagefolder", "--workers", "0"), _named(b"bad\xff.png"),
     "bad\\xff.png", "cannot decode"),
    ("control-characters-in-a-file-name", on("imagefolder", "--workers", "0"),
     _named(b"\x1b[31mred\nerror: forged.png"), "\\x1b[31mred\\x0aerror: forged.png",
     "cannot decode"),
    ("resume-epoch-10e12", ["mixtrain", "--resume", "{p}"], _crafted(epoch=10 ** 12),
     "last.pt", "outside its 1 epochs"),
    ("resume-epoch-negative", ["mixtrain", "--resume", "{p}"], _crafted(epoch=-3), "last.pt",
     "negative"),
    ("resume-batch-negative", ["mixtrain", "--resume", "{p}"], _crafted(batch=-1), "last.pt",
     "negative"),
    ("resume-batch-10e9", ["mixtrain", "--resume", "{p}"], _crafted(batch=10 ** 9), "last.pt",
     "batch 1000000000: outside its 1 epochs"),
    ("resume-rows-of-ints", ["mixtrain", "--resume", "{p}"], _crafted(rows=[1, 2]), "last.pt",
     "not a metrics row"),
    ("resume-row-without-metrics", ["mixtrain", "--resume", "{p}"],
     _crafted(rows=[{"arm": "mixtrain"}]), "last.pt", "no valid `epoch`"),
    ("resume-done-without-rows", ["mixtrain", "--resume", "{p}"],
     _crafted(done={"mixtrain": {"epochs": 1}}), "last.pt", "not a list of metrics rows"),
    ("resume-done-wrong-types", ["mixtrain", "--resume", "{p}"],
     _crafted(done={"mixtrain": [1]}), "last.pt", "does not map arm names"),
    ("resume-after-an-image-was-added", ["mixtrain", "--resume", "{p}"],
     _stopped_folder_run("added"), "{p}", "the data changed"),
    ("resume-after-an-image-was-removed", ["mixtrain", "--resume", "{p}"],
     _stopped_folder_run("removed"), "{p}", "the data changed"),
    ("milestones-nan", [*MT, "--epochs", "9", "--sched", "multistep", "--decay-milestones",
                        "nan"], None, "--decay-milestones", "increasing"),
    ("milestones-1-nan-in-yaml", [*MT, "-c", "{p}"],
     _yaml("epochs: 9\nsched: multistep\ndecay_milestones: 1,nan\n"), "--decay-milestones",
     "increasing"),
    ("model-ema-decay-without-model-ema", [*MT, "--model-ema-decay", "0.99"], None,
     "--model-ema-decay", "no --model-ema"),
    ("model-ema-warmup-without-model-ema", [*MT, "--model-ema-warmup"], None,
     "--model-ema-warmup", "no --model-ema"),
    ("experiment-list-in-yaml", [*MT, "-c", "{p}"], _yaml("experiment: [1, 2]\n"),
     "experiment", "must be str"),
    ("yaml-1.1-float-string", [*MT, "-c", "{p}"], _yaml("lr: 1e-3\n"), "`lr`",
     "lr: 1.0e-3"),
    ("config-is-a-folder", [*MT, "-c", "{p}"], _empty_dir, "{p}", "is a folder, not a file"),
    ("seta-window-keeps-no-cluster", [*MT, "--seta-num-group", "2", "--seta-window-scale",
                                      "0.2"], None, "--seta-window-scale", "keeps no cluster"),
    ("val-fraction-leaves-no-training-image", [*MT, "--data", "imagefolder", "--data-dir",
                                               "{p}", "--val-fraction", "0.5"],
     _one_image_a_class, "--val-fraction 0.5", "no training image"),
]


# values outside an option's range: (id, command line, flag, value) -> "out of range"
OUT_OF_RANGE = [
    ("val-size-5", MT, "--val-size", "5"),
    ("timing-warmup-negative", MT, "--timing-warmup", "-1"),
    ("epochs-0", MT, "--epochs", "0"),
    ("fraction-above-1", MT, "--data-fraction", "1.5"),
    ("fraction-0", MT, "--data-fraction", "0"),
    ("lr-negative", MT, "--lr", "-1"),
    ("img-size-4", MT, "--img-size", "4"),
    ("cutmix-area-1", MT, "--cutmix-area", "1.0"),
    ("naive-fraction-0", MT, "--naive-fraction", "0"),
    ("rho-above-1", MTG, "--rho", "1.5"),
    ("rho-negative", MTG, "--rho", "-0.5"),
    ("alpha-negative", MTG, "--alpha", "-0.1"),
    ("lam-above-1", MTG, "--lam", "2"),
    ("epochs-ssl-negative", MTG, "--epochs-ssl", "-1"),
    ("epochs-sl-0", MTG, "--epochs-sl", "0"),
    ("mask-ratio-1", MTG, "--mask-ratio", "1.0"),
    ("infobatch-delta-0", MT, "--infobatch-delta", "0"),
    ("momentum-negative", [*MT, "--opt", "sgd"], "--momentum", "-0.9"),
    ("decay-rate-0", MT, "--decay-rate", "0"),
    ("decay-rate-negative", MT, "--decay-rate", "-0.1"),
    ("smoothing-1", MT, "--smoothing", "1.0"),
    ("model-ema-decay-1", MT, "--model-ema-decay", "1.0"),
    ("decay-epochs-0", [*MT, "--sched", "step"], "--decay-epochs", "0"),
]
CASES += [(i, [*base, flag, value], None, flag, "out of range")
          for i, base, flag, value in OUT_OF_RANGE]


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
    assert len(err) < 2500                       # one paragraph, whatever the input held
    assert names.replace("{p}", str(path)) in err, err
    assert what in err, err
    assert not runs.exists()                     # nothing written for a bad command line

