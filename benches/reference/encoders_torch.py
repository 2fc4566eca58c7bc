"""PyTorch eager reference for `antmmf-bench encoders`: forward throughput of a MiniLM-sized BERT
(transformers BertModel, hidden 384, 6 layers, 12 heads, FFN 1536) and torchvision's swin3d_t on
the same shapes, CPU, inference mode, random init (speed does not depend on the weights).
Usage: python benches/reference/encoders_torch.py [--threads 2] [--iters 10] [--only text|video]"""
import argparse, os, statistics, time
import torch

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--iters", type=int, default=10)
ap.add_argument("--text-batch", type=int, default=16)
ap.add_argument("--text-len", type=int, default=32)
ap.add_argument("--video-batch", type=int, default=2)
ap.add_argument("--frames", type=int, default=8)
ap.add_argument("--size", type=int, default=224)
ap.add_argument("--attn", default="eager", help="transformers attn_implementation: eager or sdpa")
ap.add_argument("--only", choices=["text", "video"])
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)


def bench(f):
    f()  # warm-up
    times = []
    for _ in range(a.iters):
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), min(times)


print(f"# torch {torch.__version__}, eager, inference_mode, median (min) of {a.iters} after 1 warm-up; "
      f"torch.set_num_threads({a.threads}); load {os.getloadavg()[0]:.2f}")
print("| encoder | input | ms / batch | items/s |")
print("|---|---|---|---|")
with torch.inference_mode():
    if a.only in (None, "text"):
        from transformers import BertConfig, BertModel
        cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                         intermediate_size=1536, attn_implementation=a.attn)
        bert = BertModel(cfg).eval()
        shape = (a.text_batch, a.text_len)
        def text():
            ids = torch.randint(1, 30000, shape)
            bert(input_ids=ids, attention_mask=torch.ones(shape, dtype=torch.long)).last_hidden_state.sum().item()
        med, mn = bench(text)
        print(f"| BERT h384 L6 ({a.attn}) | {a.text_batch}x{a.text_len} tokens | {med:.1f} ({mn:.1f}) | {a.text_batch / med * 1e3:.1f} texts/s |")
    if a.only in (None, "video"):
        from torchvision.models.video import swin3d_t
        swin = swin3d_t().eval()
        swin.head = torch.nn.Identity()
        shape = (a.video_batch, 3, a.frames, a.size, a.size)
        def video():
            swin(torch.randn(shape)).sum().item()
        med, mn = bench(video)
        print(f"| Swin3D-T | {a.video_batch}x3x{a.frames}x{a.size}x{a.size} | {med:.1f} ({mn:.1f}) | {a.video_batch / med * 1e3:.2f} videos/s |")
