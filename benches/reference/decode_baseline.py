#!/usr/bin/env python3
"""Reference for `antmmf-bench decode`: eval-mode clip loading with decord and with PyAV.

The same job as the Rust benchmark, per clip: open the file, take AntMMF's eval frame indices
(`VideoReader.sample_frames` with sample="uniform": segment middles of
`linspace(0, vlen, n + 1)`), decode those frames to RGB, then pytorchvideo's eval transform
(`/255`, ImageNet normalisation, short side -> int(1.2 * size) with bilinear
`F.interpolate(align_corners=False)` taps, center crop `size`), giving a float32
`[T, 3, size, size]` array. The resize is done with numpy on the crop window only, as the Rust
side does (no torch needed); both sides compute the same taps.

Decoders are single-threaded (`num_threads=1` / `thread_count=1`) so the numbers are per core.
Workers are processes (`multiprocessing`), each taking clips from a shared list, as a PyTorch
DataLoader with `num_workers` would.

Setup (outside CI):
    python3 -m venv /tmp/decenv && /tmp/decenv/bin/pip install decord av numpy pillow
Run:
    /tmp/decenv/bin/python benches/reference/decode_baseline.py --videos assets/video \
        --backend decord pyav --workers 1 2 --repeat 10
"""

import argparse
import math
import multiprocessing as mp
import os
import time

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
CLIPS = ["bikes", "carphone_pristine", "bigbuckbunny", "carphone_distorted"]


def eval_indices(vlen, n_clips):
    """AntMMF's eval sampling (uniform), with its resampling when the video is short."""
    acc = min(n_clips, vlen)
    if acc == 0:
        return []
    bounds = [int(x) for x in np.linspace(0, vlen, acc + 1)]
    idx = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        b_end = max(a + 1, b - 1)
        idx.append((a + b_end) // 2)
    if acc < n_clips:
        idx = [idx[int((acc - 1) * i / (n_clips - 1) + 0.5)] for i in range(n_clips)]
    return idx


def taps(in_len, out_len, start, length):
    """torch bilinear, align_corners=False: source rows/cols and weights of outputs start..start+length."""
    scale = in_len / out_len
    dst = np.arange(start, start + length, dtype=np.float64)
    src = np.maximum((dst + 0.5) * scale - 0.5, 0.0)
    i0 = np.floor(src).astype(np.int64)
    i0 = np.minimum(i0, in_len - 1)
    i1 = np.minimum(i0 + 1, in_len - 1)
    lam = (src - i0).astype(np.float32)
    return i0, i1, lam


def eval_transform(frames, size):
    """frames: uint8 [T, H, W, 3] -> float32 [T, 3, size, size]."""
    t, h, w, _ = frames.shape
    short = int(size * 1.2)
    if h <= w:
        new_h, new_w = short, int(math.floor(w / h * short))
    else:
        new_h, new_w = int(math.floor(h / w * short)), short
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    r0, r1, rl = taps(h, new_h, top, size)
    c0, c1, cl = taps(w, new_w, left, size)
    # Gather the crop's source rows before converting to float (224 rows, not the whole frame).
    rows = (frames[:, r0].astype(np.float32) * (1.0 - rl)[None, :, None, None]
            + frames[:, r1].astype(np.float32) * rl[None, :, None, None])
    out = rows[:, :, c0] * (1.0 - cl)[None, None, :, None] + rows[:, :, c1] * cl[None, None, :, None]
    out = (out / 255.0 - MEAN) / STD
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def load_decord(path, n_frames):
    import decord

    vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    idx = eval_indices(len(vr), n_frames)
    return idx, vr.get_batch(idx).asnumpy()


def load_pyav(path, n_frames):
    """Index packets once (demux, no decode), then seek to the keyframe before each needed GOP
    and decode forward only as far as the wanted frames."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.pts is not None]
        pts_sorted = sorted(p for p, _ in packets)
        keys = sorted(p for p, k in packets if k)
        idx = eval_indices(len(pts_sorted), n_frames)
        wanted = sorted(set(pts_sorted[i] for i in idx))
        got = {}
        it = None
        last_pts = -math.inf  # last frame decoded
        for target in wanted:
            if target in got:
                continue
            k = max([kp for kp in keys if kp <= target], default=keys[0])
            # Seek only forward past what was decoded (never back), as the Rust decoder does.
            if it is None or k > last_pts:
                container.seek(k, stream=stream, backward=True, any_frame=False)
                it = container.decode(stream)
            for frame in it:
                last_pts = frame.pts
                if frame.pts in wanted and frame.pts not in got:
                    got[frame.pts] = frame.to_ndarray(format="rgb24")
                if frame.pts >= target:
                    break
        frames = np.stack([got[pts_sorted[i]] for i in idx])
    return idx, frames


LOADERS = {"decord": load_decord, "pyav": load_pyav}


def job(args):
    backend, path, n_frames, size = args
    t = time.perf_counter()
    idx, frames = LOADERS[backend](path, n_frames)
    decoded = time.perf_counter() - t
    out = eval_transform(frames, size)
    assert out.shape == (n_frames, 3, size, size), out.shape
    return os.path.basename(path), idx, time.perf_counter() - t, decoded


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", default="assets/video")
    ap.add_argument("--clips", nargs="+", default=CLIPS)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--backend", nargs="+", default=["decord", "pyav"], choices=sorted(LOADERS))
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeat", type=int, default=10, help="passes over the clips per measurement")
    a = ap.parse_args()
    paths = [os.path.join(a.videos, c + ".mp4") for c in a.clips]
    print(f"# {len(paths)} clips x {a.repeat} passes, {a.frames} frames, {a.size} px, eval mode; "
          f"{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
    for backend in a.backend:
        # Warm-up and per-clip timing (single process, median of `repeat`).
        per_clip = {}
        for _ in range(max(a.repeat, 1)):
            for p in paths:
                name, idx, dt, dec = job((backend, p, a.frames, a.size))
                entry = per_clip.setdefault(name, (idx, [], []))
                entry[1].append(dt)
                entry[2].append(dec)
        for name, (idx, times, dec) in per_clip.items():
            print(f"{backend:7} {name:24} indices {idx} median {1e3 * np.median(times):7.2f} ms "
                  f"(decode {1e3 * np.median(dec):7.2f} ms)")
        for workers in a.workers:
            jobs = [(backend, p, a.frames, a.size) for _ in range(a.repeat) for p in paths]
            with mp.get_context("fork").Pool(workers) as pool:
                pool.map(job, jobs[:workers])  # start-up outside the timing
                t = time.perf_counter()
                pool.map(job, jobs, chunksize=1)
                wall = time.perf_counter() - t
            print(f"{backend:7} workers {workers}: {len(jobs) / wall:7.2f} clips/s "
                  f"({1e3 * wall / len(jobs):.2f} ms/clip wall)")


if __name__ == "__main__":
    main()
