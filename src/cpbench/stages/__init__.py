"""One function per stage of Cellpose 2D segmentation; the only package that knows Cellpose versions.

Stage map (shared/DESIGN.md) and the public function for each stage::

    1  read image        read_full / read_page / read_region / read_lazy     (readwrite)
    2  convert           convert                                             (api: dispatched)
    3  normalize         normalize                                           (common)
    4  rescale           rescale                (factor: rescale_factor)     (api)
    5  network           run_network                                         (api)
    6  resample flows    resample_flows                                      (common)
    7  follow flows      follow_flows                                        (api)
    8  masks             get_masks                                           (api)
    9  flow QC           remove_bad_flow_masks                               (common)
    10 fill holes        fill_holes_and_remove_small                         (common)
    11 write masks       write_masks                                         (readwrite)
       end to end        eval_end_to_end        (CellposeModel.eval; segment_stagewise chains 2-10)

``api`` reads the installed version and dispatches to ``v3`` (checked against running cellpose
3.1.1.x: every stage runs, the chain reproduces ``compute_masks`` and ``CellposeModel.eval``
exactly), ``v30`` (3.0.x: other follow-flows and get-masks functions and network output; checked
the same way against 3.0 and 3.0.11) or ``v4`` (4.0.x and 4.1+; checked against 4.2.1.1). ``common`` holds
the stages whose Cellpose calls are the same in both. Helpers the benchmarks need:
:func:`ground_truth_flows`, :func:`random_model` (at any input channel count the version allows:
:func:`input_channels`), :func:`average_precision`.

Inputs are 2D, a single nuclear channel ``(Y, X)`` uint16; every function works on numpy arrays
and returns the stage's natural output. Units: sizes in pixels, memory in bytes, diameters in pixels.
"""

from cpbench.stages.api import (
    builtin_weights,
    cellpose_version,
    check_network_options,
    convert,
    default_bsize,
    default_diam_mean,
    eval_end_to_end,
    follow_flows,
    get_masks,
    ground_truth_flows,
    input_channels,
    load_weights,
    masks_from_flows,
    random_architecture,
    random_model,
    rescale,
    rescale_factor,
    run_network,
    runs_cpnet_weights,
    segment_stagewise,
)
from cpbench.stages.common import (
    CELLPROB_INSIDE,
    CELLPROB_OUTSIDE,
    FLOW_SCALE,
    Device,
    average_precision,
    fill_holes_and_remove_small,
    normalize,
    remove_bad_flow_masks,
    resample_flows,
)
from cpbench.stages.readwrite import (
    read_full,
    read_lazy,
    read_page,
    read_region,
    write_masks,
)

__all__ = [
    "CELLPROB_INSIDE", "CELLPROB_OUTSIDE", "FLOW_SCALE", "Device", "average_precision", "builtin_weights",
    "cellpose_version", "check_network_options", "convert", "default_bsize", "default_diam_mean", "eval_end_to_end",
    "fill_holes_and_remove_small", "follow_flows", "get_masks", "ground_truth_flows", "input_channels", "load_weights",
    "masks_from_flows", "normalize", "random_architecture", "random_model", "read_full", "read_lazy",
    "read_page", "read_region", "remove_bad_flow_masks", "resample_flows", "rescale", "rescale_factor",
    "run_network", "runs_cpnet_weights", "segment_stagewise", "write_masks",
]
