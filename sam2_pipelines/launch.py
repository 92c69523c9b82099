"""Loading a pipeline for the command line, the demo and the batch engines, with errors a user can act on.

Shared below :mod:`sam2_pipelines.cli` and :mod:`sam2_pipelines.demo` (neither imports the other).
"""

from __future__ import annotations

import os

from sam2_pipelines.models.loading import DEFAULT_MODEL


class CommandError(Exception):
    """A failure to report to the user as one message (no traceback), with exit status 1."""


class ModelNotFoundError(CommandError):
    """The model is neither a local path nor reachable on the Hub (no network, not cached)."""


def model_not_found_message(model: str, error: BaseException | None = None) -> str:
    """The one-paragraph explanation printed when ``model`` cannot be loaded from the Hub or disk."""
    reason = f" ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})" if error else ""
    return (
        f"Could not load the model {model!r}{reason}. It is neither a local directory with a saved model nor "
        "reachable on the Hugging Face Hub (no network, or not in the local cache). Point --model at local "
        "weights instead: either a directory written by save_pretrained (for example the model repository "
        f"downloaded on a machine with network access with `hf download {DEFAULT_MODEL} --local-dir "
        "sam2.1-hiera-tiny` and copied here, then `--model sam2.1-hiera-tiny`), or a checkpoint file from Meta's "
        "SAM 2 release (`--model sam2.1_hiera_tiny.pt`), which is converted on load."
    )


class UsageError(Exception):
    """A bad combination of arguments found after parsing: reported like argparse errors (status 2)."""


def load_pipeline(task: str, model: str, device=None, dtype: str = "float32", progress: bool = True):
    """``transformers.pipeline(task, model=...)`` with a one-paragraph :class:`CommandError` when the model is unreachable."""
    import torch

    from sam2_pipelines import pipeline  # transformers.pipeline that also accepts Meta .pt checkpoints

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device must be a torch device such as cpu, cuda, cuda:1 or mps; got {device!r}") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise CommandError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise CommandError(f"--device {device}: MPS is not available on this machine (use --device cpu)")
    if not progress:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    is_local = os.path.exists(model)
    try:
        return pipeline(task, model=model, device=device, dtype=getattr(torch, dtype))
    except OSError as error:
        # A local path that exists but is broken is the user's file: say what is wrong with it.
        if is_local:
            raise CommandError(f"could not load {model!r} for {task}: {error}") from error
        raise ModelNotFoundError(model_not_found_message(model, error)) from error
    except ValueError as error:  # e.g. a model of another family, or a checkpoint that does not convert
        raise CommandError(f"could not load {model!r} for {task}: {error}") from error
    except Exception as error:  # a broken local file (truncated weights...) fails inside the loaders
        if not is_local:
            raise
        raise CommandError(f"could not load {model!r} for {task}: {type(error).__name__}: {error}") from error
