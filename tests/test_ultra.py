"""ultralytics set-up: offline, and every core on the CPU."""

import os

from bddengine.integrations.ultralytics import offline_ultralytics


def test_ultralytics_uses_every_core_on_the_cpu() -> None:
    import torch
    import ultralytics.utils.torch_utils as torch_utils

    offline_ultralytics()
    cores = len(os.sched_getaffinity(0))
    assert torch_utils.NUM_THREADS == cores  # ultralytics' own default is cores - 1
    before = torch.get_num_threads()
    try:
        torch_utils.select_device("cpu", verbose=False)
        assert torch.get_num_threads() == cores
    finally:
        torch.set_num_threads(before)
