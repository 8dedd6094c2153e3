"""``cpbench synth`` (generate a synthetic CyCIF OME-TIFF) and ``cpbench info`` (summarise one)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cpbench.errors import UserError

DEFAULT_DIR = Path("data") / "synth"


def _ints(text: str, n: int, what: str) -> tuple[int, ...]:
    parts = text.replace("x", ",").split(",")
    try:
        vals = tuple(int(p) for p in parts)
    except ValueError:
        raise UserError(f"{what} must be {n} whole numbers separated by commas, got {text!r}") from None
    if len(vals) != n:
        raise UserError(f"{what} must be {n} whole numbers separated by commas, got {text!r}")
    return vals


def register(sub: Any) -> None:
    """Add the ``synth`` and ``info`` sub-commands."""
    from cpbench.synth.params import PRESETS, SceneParams

    d = SceneParams()
    p = sub.add_parser(
        "synth",
        help="generate a synthetic CyCIF-like OME-TIFF with ground-truth nuclei",
        description="Generate a tiled pyramidal OME-TIFF (uint16, C x Y x X; nuclear stain in channel 0 of "
        "every 4-channel cycle) and its ground-truth nuclear labels (X.labels.ome.tif), streaming: memory "
        "does not grow with image size.",
    )
    p.add_argument("preset", nargs="?", choices=sorted(PRESETS), help="challenge image shape to copy")
    p.add_argument("--shape", help="C,Y,X (overrides the preset)")
    p.add_argument("--size", help="Y,X (with --channels, or the preset's channels)")
    p.add_argument("--channels", type=int, help="number of channels C (e.g. 1: nuclear stain only)")
    p.add_argument("--out", type=Path, help=f"output .ome.tif (default: {DEFAULT_DIR}/<preset or shape>.ome.tif)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--density", type=float, default=d.density,
                   help="candidate nuclei per 10,000 px² of cellular tissue before hard-core thinning "
                        f"(default {d.density}; realised density is reported)")
    p.add_argument("--diameter", type=float, default=d.diameter_mean, help="mean nucleus diameter, px")
    p.add_argument("--diameter-sd", type=float, default=d.diameter_sd, help="sd of nucleus diameter, px")
    p.add_argument("--overlap", type=float, default=d.overlap,
                   help="minimum centre distance as a fraction of the radius sum (1: no overlap)")
    p.add_argument("--tissue-fraction", type=float, default=d.tissue_fraction,
                   help="expected fraction of a large slide covered by tissue (rest is empty glass)")
    p.add_argument("--tissue-scale", type=float, default=d.tissue_scale, help="size of tissue/empty regions, px")
    p.add_argument("--out-of-focus", type=float, default=d.out_of_focus, help="about this fraction is blurred")
    p.add_argument("--tile", type=int, default=1024, help="TIFF tile side, px (multiple of 16)")
    p.add_argument("--levels", type=int, help="pyramid sub-levels (default: until one tile holds the smallest)")
    p.add_argument("--compression", default="zlib", help="none | zlib | zstd | lzw (default zlib)")
    p.add_argument("--pixel-size", type=float, default=0.65, help="physical pixel size written to OME-XML, µm")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--workers", type=int, default=None,
                   help="processes that render tiles (default: every CPU from 16 MP up, else 1; the files are the "
                   "same whatever the number)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-preview", action="store_true", help="do not write NAME.preview.png")
    p.set_defaults(func=run)

    q = sub.add_parser("info", help="summarise an OME-TIFF (shape, tiles, pyramid, channels)")
    q.add_argument("path", type=Path)
    q.add_argument("--json", action="store_true")
    q.add_argument("--preview", type=Path, metavar="PNG", help="also draw an overview + crop picture here")
    q.set_defaults(func=run_info)


def resolve_shape(args: argparse.Namespace) -> tuple[int, int, int]:
    """The (C, Y, X) asked for by preset / --shape / --size / --channels."""
    from cpbench.synth.params import PRESETS

    if args.shape and args.size:
        raise UserError("give either --shape C,Y,X or --size Y,X, not both")
    if args.shape:
        if args.channels is not None:
            raise UserError("--channels goes with --size Y,X; --shape already gives C")
        return _ints(args.shape, 3, "--shape")  # type: ignore[return-value]
    base = PRESETS[args.preset] if args.preset else None
    if args.size:
        y, x = _ints(args.size, 2, "--size")
    elif base is not None:
        y, x = base[1], base[2]
    else:
        raise UserError("say what to generate: a preset (exemplar-001, LUNG-1-LN, WD-76845-097), --shape C,Y,X or --size Y,X")
    c = args.channels if args.channels is not None else (base[0] if base else 1)
    return int(c), int(y), int(x)


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n} B"


def _preview_path(image: Path) -> Path:
    name = image.name
    stem = name[: name.rindex(".ome.tif")] if ".ome.tif" in name else image.stem
    return image.with_name(stem + ".preview.png")


def run(args: argparse.Namespace) -> int:
    """Generate the image; print a short summary (or JSON)."""
    from cpbench.synth.params import SceneParams
    from cpbench.synth.writer import OutputOptions, check_shape, default_name, generate

    shape = check_shape(resolve_shape(args))
    out = args.out or DEFAULT_DIR / default_name(args.preset, shape, args.seed)
    sp = SceneParams(seed=args.seed, diameter_mean=args.diameter, diameter_sd=args.diameter_sd,
                     density=args.density, overlap=args.overlap, tissue_scale=args.tissue_scale,
                     tissue_fraction=args.tissue_fraction, out_of_focus=args.out_of_focus)
    opt = OutputOptions(tile=args.tile, levels=args.levels, compression=args.compression,
                        pixel_size_um=args.pixel_size, overwrite=args.overwrite)
    from cpbench.synth.parallel import default_workers

    s = generate(out, shape, sp, opt, progress=not args.quiet,
                 workers=default_workers(shape) if args.workers is None else args.workers)
    if not args.no_preview:
        from cpbench.synth.preview import write_preview

        s["preview"] = str(write_preview(Path(s["image"]), _preview_path(Path(s["image"])), Path(s["labels"])))
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    c, y, x = s["shape"]
    print(f"image      {s['image']}  ({_fmt_bytes(s['image_bytes'])}, {s['compression']})")
    print(f"labels     {s['labels']}  ({_fmt_bytes(s['labels_bytes'])})")
    print(f"shape      C={c} Y={y} X={x} uint16, tiles {s['tile']}x{s['tile']}, {s['levels']} sub-levels")
    print(f"nuclei     {s['nuclei']:,} ground-truth labels, tissue {s['tissue_fraction']:.0%} of the area")
    if "preview" in s:
        print(f"preview    {s['preview']}")
    print(f"time       {s['seconds']:.1f} s, {s['megapixels_per_second']:.2f} MP/s (all channels), "
          f"peak RSS {_fmt_bytes(s['peak_rss_bytes'])}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Print the summary of an OME-TIFF."""
    from cpbench.io.ometiff import describe
    from cpbench.io.slide import open_slide, quiet_tifffile

    open_slide(args.path, planes=False)  # one line for a file that is missing, not a TIFF or truncated
    try:
        with quiet_tifffile():
            d = describe(args.path)
    except Exception as exc:  # noqa: BLE001 - a header the checks passed may still hold nonsense: one line
        raise UserError(f"{args.path} has metadata that cannot be read ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:200]}); re-export or re-download it") from None
    if args.preview:
        from cpbench.synth.preview import write_preview

        d["preview"] = str(write_preview(args.path, args.preview))
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    print(f"{d['path']}: {d['axes']} {d['shape']} {d['dtype']}, tile {d['tile']}, {d['compression']}, "
          f"{_fmt_bytes(d['file_bytes'])}")
    print(f"levels    {d['levels']}")
    print(f"channels  {', '.join(d['channel_names']) or '(none named)'}")
    print(f"pixel     {d['pixel_size_um']} µm")
    if "preview" in d:
        print(f"preview   {d['preview']}")
    return 0
