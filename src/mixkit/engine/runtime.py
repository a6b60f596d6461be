"""Device, precision and compilation settings: one object the engine and data core share.

The same code runs on CUDA, CPU and MPS; only this module looks at which one it is.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from mixkit.errors import UserError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA (this process's ``LOCAL_RANK``), else MPS, else CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device `{name}` is not a device name.",
                        hint="Use auto, cpu, cuda, cuda:N or mps.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name} was asked for, but CUDA is not available here.",
                        hint="Use --device cpu (or auto).")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s).")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps was asked for, but MPS is not available here.",
                        hint="Use --device cpu (or auto).")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device `{name}`: only cpu, cuda and mps are supported.")
    return dev


def _check_compile(backend: str, mode: str) -> None:
    """Refuse an unknown backend, or a mode the backend does not take, before anything runs."""
    from torch._dynamo import list_backends

    known = list_backends(exclude_tags=())
    if backend not in known:
        raise UserError(f"--compile-backend {backend!r} is not a torch.compile backend of this "
                        f"torch ({torch.__version__}).",
                        hint=f"Use one of: {', '.join(list_backends())}; for debugging "
                        "also aot_eager or eager.")
    if mode != "default" and backend != "inductor":
        raise UserError(f"--compile-mode {mode} needs --compile-backend inductor (got "
                        f"{backend!r}).", hint="Drop --compile-mode, or use inductor.")


def _bf16_ok(dev: torch.device, dtype: torch.dtype) -> bool:
    """Automatic AMP only where it is fast and safe: bf16 on a GPU with bf16 (Ampere and
    later); fp16 needs a loss scaler and is only used when asked for."""
    return dtype == torch.bfloat16 and torch.cuda.is_bf16_supported()


@dataclass
class Runtime:
    device: torch.device
    amp: bool = False
    amp_dtype: torch.dtype = torch.bfloat16
    channels_last: bool = False
    compile: bool = False
    compile_mode: str = "default"
    compile_backend: str = "inductor"

    @classmethod
    def resolve(cls, device: str = "auto", *, amp: bool | None = None,
                amp_dtype: str = "bfloat16", channels_last: bool | None = None,
                torchcompile: bool = False, compile_mode: str = "default",
                compile_backend: str = "inductor", model_kind: str = "cnn") -> "Runtime":
        """The runtime asked for, with the fast defaults of the device where a setting is None:
        on CUDA, bf16 autocast (where the GPU has bf16) and channels_last for CNNs; on CPU and
        MPS neither (``docs/engine.md``)."""
        dev = resolve_device(device)
        dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[amp_dtype]
        cuda = dev.type == "cuda"
        amp = amp if amp is not None else cuda and _bf16_ok(dev, dtype)
        if amp and dtype == torch.float16 and dev.type == "cpu":
            raise UserError("--amp-dtype float16 is not supported on the CPU.",
                            hint="Use --amp-dtype bfloat16 on the CPU, or drop --amp.")
        channels_last = (channels_last if channels_last is not None
                         else cuda and model_kind == "cnn")
        if torchcompile:
            _check_compile(compile_backend, compile_mode)
        return cls(dev, bool(amp), dtype, bool(channels_last), torchcompile, compile_mode,
                   compile_backend)

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling is needed for float16 only (bfloat16 has float32's range)."""
        return torch.amp.GradScaler(self.device.type,
                                    enabled=self.amp and self.amp_dtype == torch.float16)

    def synchronize(self) -> None:
        """Wait for queued device work, so host timestamps measure it (timing core)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def prepare(self, model: torch.nn.Module, compile: bool = True) -> torch.nn.Module:
        """On the device, in the memory format, compiled if asked (``compile=False``: a copy that
        is only evaluated, such as the weights' EMA)."""
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.compile and compile:
            how = {"backend": self.compile_backend,
                   **({"mode": self.compile_mode} if self.compile_mode != "default" else {})}
            model.compile(**how)  # in place: state_dict keys stay the same for checkpoints
            backbone = getattr(model, "backbone", None)
            if backbone is not None:
                # methods call the feature extractor directly (split propagation, MixTraining's
                # shared forward): compile that too, as an instance attribute (keys unchanged)
                backbone.forward_features = torch.compile(backbone.forward_features, **how)
        return model

    def _compile_name(self) -> str:
        extra = [x for x, dflt in ((self.compile_backend, "inductor"),
                                   (self.compile_mode, "default")) if x != dflt]
        return "torch.compile" + (f" ({', '.join(extra)})" if extra else "")

    def describe(self) -> str:
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
        elif self.device.type == "mps":
            name = "Apple MPS"
        else:
            import platform

            cpu = platform.processor() or platform.machine()
            name = f"{cpu}, {torch.get_num_threads()} threads"
        extras = [f"amp {str(self.amp_dtype).replace('torch.', '')}" if self.amp else None,
                  "channels_last" if self.channels_last else None,
                  self._compile_name() if self.compile else None]
        tail = "".join(f", {e}" for e in extras if e)
        return f"{self.device.type}: {name}{tail}"
