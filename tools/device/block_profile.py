"""One 2100 px block of a slide through CellposeModel.eval on the GPU: cold, warm, then under cProfile
(top functions by cumulative time), with 2 and with 16 torch threads. usage: block_profile.py SLIDE"""
import cProfile
import pstats
import sys
import time

import numpy as np
import torch

from cpbench import stages as cs
from cpbench.models import registry

img = cs.read_region(sys.argv[1], 0, 12000, 12000, 2100, 2100)
lo, hi = np.percentile(img, (1, 99))
for threads in (2, 16):
    torch.set_num_threads(threads)
    m = registry.load("reference", device="cuda", download=False)
    for k in range(2):
        t = time.perf_counter(); lab = cs.eval_end_to_end(m, img, 13.0, lowhigh=(lo, hi)); torch.cuda.synchronize()
        print(f"threads {threads} eval {k}: {time.perf_counter() - t:.2f} s, {lab.max()} labels", flush=True)
    if threads == 2:
        pr = cProfile.Profile(); pr.enable(); cs.eval_end_to_end(m, img, 13.0, lowhigh=(lo, hi)); torch.cuda.synchronize(); pr.disable()
        pstats.Stats(pr).sort_stats("cumulative").print_stats(28)
print("GPU peak allocated MB", torch.cuda.max_memory_allocated() / 1e6)
