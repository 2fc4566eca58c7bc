"""numpy reference for `antmmf-bench recall`: the same N x N score matrix (top 24 bits of
i * 2654435761 mod 2^32, scaled to [0, 1)), ground truth on the diagonal, text-to-video and
video-to-text ranks with ties counted as AntMMF does (rank = 1 + number of strictly greater
scores), then R@1/5/10, median rank and mean rank, vectorised as a numpy evaluation script would.
Usage: python benches/reference/recall_numpy.py [--sizes 1000,10000] [--iters 5]"""
import argparse, os, statistics, time
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--sizes", default="1000,10000")
ap.add_argument("--iters", type=int, default=5)
a = ap.parse_args()


def metrics(ranks):
    return {
        "r1": 100.0 * np.mean(ranks <= 1),
        "r5": 100.0 * np.mean(ranks <= 5),
        "r10": 100.0 * np.mean(ranks <= 10),
        "mr": float(np.median(ranks)),
        "mean": float(np.mean(ranks)),
    }


def evaluate(sim):
    gt_scores = np.diag(sim)
    t2v = 1 + (sim > gt_scores[:, None]).sum(axis=1)
    v2t = 1 + (sim.T > gt_scores[:, None]).sum(axis=1)
    return metrics(t2v), metrics(v2t)


print(f"# numpy {np.__version__}, median (min) of {a.iters} after 1 warm-up; load {os.getloadavg()[0]:.2f}")
print("| N | ms | min ms | t2v R@1 | v2t R@1 | t2v mean rank | v2t median rank |")
print("|---|---|---|---|---|---|---|")
for n in map(int, a.sizes.split(",")):
    i = np.arange(n * n, dtype=np.uint64)
    h = (i * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    sim = ((h >> np.uint64(8)).astype(np.float32) / np.float32(1 << 24)).reshape(n, n)
    t2v, v2t = evaluate(sim)
    times = []
    for _ in range(a.iters):
        t = time.perf_counter()
        t2v, v2t = evaluate(sim)
        times.append((time.perf_counter() - t) * 1e3)
    print(f"| {n} | {statistics.median(times):.2f} | {min(times):.2f} | {t2v['r1']:.4f} | {v2t['r1']:.4f} | {t2v['mean']:.4f} | {v2t['mr']:.1f} |")
