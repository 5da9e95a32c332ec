"""Keep ultralytics off the network: no weight, font or telemetry downloads mid-run.

Weights are resolved locally by the train stage (with a clear error when missing).
ultralytics also fetches Arial.ttf from GitHub while checking a dataset or drawing
plots; offline that is a failing request each time, so the lookup is pointed at
the copy in ultralytics' config folder or matplotlib's bundled DejaVu Sans.
Set ``YOLO_OFFLINE=0`` to let ultralytics download as usual.
"""

from __future__ import annotations

import os
from pathlib import Path


def local_font(font: str = "Arial.ttf") -> Path:
    """A font file on disk: ultralytics' own copy if present, else matplotlib's DejaVu Sans."""
    from matplotlib import font_manager
    from ultralytics.utils import USER_CONFIG_DIR

    own = USER_CONFIG_DIR / Path(font).name
    if own.is_file():
        return own
    return Path(font_manager.findfont("DejaVu Sans"))


def use_every_core() -> int:
    """Let ultralytics' CPU training and inference use every core this process may use.

    ultralytics sets torch to ``cpu_count - 1`` threads on the CPU (and trains with
    no DataLoader workers there): one thread on a 2-core machine, half its speed.

    Returns:
        The thread count ultralytics will set.
    """
    import ultralytics.utils.torch_utils as torch_utils

    from bddengine.embedding.encode import cpu_count

    torch_utils.NUM_THREADS = cpu_count()
    return torch_utils.NUM_THREADS


def offline_ultralytics() -> bool:
    """Switch ultralytics to offline mode unless the user set ``YOLO_OFFLINE=0``; use every core.

    Returns:
        True when offline mode is on.
    """
    use_every_core()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if os.environ["YOLO_OFFLINE"].lower() in ("0", "false", "no"):
        return False
    import ultralytics.data.utils as data_utils
    import ultralytics.utils.plotting as plotting

    data_utils.check_font = local_font
    plotting.check_font = local_font
    return True


def keep_label_caches_out() -> None:
    """Stop ultralytics writing ``labels/*.cache`` beside a dataset's label files.

    Training reads the split run's YOLO export, a committed run of another stage that
    no stage may write into; without its cache, ultralytics checks the labels again at
    the start of each training (every training run did so anyway: each has new folders).
    """
    import ultralytics.data.dataset as dataset

    def mark_only(prefix: str, path: Path, x: dict, version: str) -> None:
        x["version"] = version  # what the saver adds in place, and the reader checks

    dataset.save_dataset_cache_file = mark_only
