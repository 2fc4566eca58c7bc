"""PyTorch eager reference for `antmmf-bench train-step` (configs/bench/univl_small.yml): one
UniVL retrieval training step of the same model on the same shapes, CPU.

Model: a MiniLM-size BERT (transformers BertModel: width 384, 6 layers, 12 heads, FFN 1536) as text
encoder and, with its own pooler copy, cross encoder; torchvision's swin3d_t (embed 96, depths
[2, 2, 6, 2], patch [2, 4, 4], window [8, 7, 7]) on 8 frames of 112x112, mean-pooled to one clip
token and projected 768 -> 384. Losses as AntMMF's retrieval head: L1 = MIL-NCE over the cosine
matrix of the text pooler output and img_fc(clip) (Linear, ReLU, Linear), L2 = MIL-NCE over
similarity_dense (Dropout, Linear 384 -> 768, ReLU, Linear 768 -> 1) of the cross pooler on every
(text, video) pair of the batch, the cross input being [word embeddings ; clip token ; SEP] with
token type 1 and positions from 0 on the visual part. AdamW (betas 0.9/0.98, weight decay 0.01),
gradients clipped at norm 5. Batch 4, captions of 32 tokens. Random weights and inputs.

Usage: python benches/reference/univl_step_torch.py [--threads 2] [--iters 5] [--warmup 1]"""
import argparse, os, resource, statistics, time
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--iters", type=int, default=5)
ap.add_argument("--warmup", type=int, default=1)
ap.add_argument("--batch", type=int, default=4)
ap.add_argument("--frames", type=int, default=8)
ap.add_argument("--size", type=int, default=112)
ap.add_argument("--text-len", type=int, default=32)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

from transformers import BertConfig, BertModel
from transformers.models.bert.modeling_bert import BertPooler
from torchvision.models.video import swin3d_t


def mil_nce(x):
    """AntMMF's MILNCELoss on a [B, B] score matrix (one positive per row and column)."""
    x = x.view(x.shape[0], x.shape[0], -1)
    nominator = (x * torch.eye(x.shape[0])[:, :, None]).sum(dim=1)
    nominator = torch.logsumexp(nominator, dim=1)
    denominator = torch.cat((x, x.permute(1, 0, 2)), dim=1).view(x.shape[0], -1)
    denominator = torch.logsumexp(denominator, dim=1)
    return torch.mean(denominator - nominator)


class UnivlSmall(nn.Module):
    def __init__(self):
        super().__init__()
        cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                         intermediate_size=1536, max_position_embeddings=512, attn_implementation="eager")
        self.bert = BertModel(cfg)
        self.cross_pooler = BertPooler(cfg)
        swin = swin3d_t()
        self.swin_features, self.swin_norm = swin.features, swin.norm
        self.patch_embed = swin.patch_embed
        self.pos_drop = swin.pos_drop
        self.img_proj = nn.Linear(768, 384)
        self.img_fc = nn.Sequential(nn.Linear(384, 384), nn.ReLU(), nn.Linear(384, 384))
        self.similarity_dense = nn.Sequential(nn.Dropout(0.1), nn.Linear(384, 768), nn.ReLU(), nn.Linear(768, 1))

    def clips(self, video):  # [B, 3, T, H, W] -> [B, 1, 384]
        x = self.pos_drop(self.patch_embed(video))  # [B, T', H', W', 96]
        x = self.swin_norm(self.swin_features(x))  # [B, T', H', W', 768]
        return self.img_proj(x.mean(dim=(1, 2, 3)))[:, None, :]

    def forward(self, ids, mask, video):
        b, l = ids.shape
        text = self.bert(input_ids=ids, attention_mask=mask).pooler_output
        clip = self.clips(video)
        t1 = F.normalize(text, dim=-1)
        v1 = F.normalize(self.img_fc(clip), dim=-1)[:, 0]
        l1 = mil_nce(t1 @ v1.T)
        # L2 on every (text i, video j) pair: row i * b + j.
        words = self.bert.embeddings.word_embeddings(ids)  # [B, L, H]
        sep = self.bert.embeddings.word_embeddings(torch.full((1, 1), 102))
        text_part = words[:, None].expand(b, b, l, 384).reshape(b * b, l, 384)
        clip_part = clip[None].expand(b, b, 1, 384).reshape(b * b, 1, 384)
        embeds = torch.cat([text_part, clip_part, sep.expand(b * b, 1, 384)], dim=1)
        types = torch.cat([torch.zeros(b * b, l, dtype=torch.long), torch.ones(b * b, 2, dtype=torch.long)], 1)
        positions = torch.cat([torch.arange(l), torch.arange(2)])[None].expand(b * b, l + 2)
        attn = torch.cat([mask[:, None].expand(b, b, l).reshape(b * b, l), torch.ones(b * b, 2, dtype=torch.long)], 1)
        seq = self.bert(inputs_embeds=embeds, attention_mask=attn, token_type_ids=types,
                        position_ids=positions).last_hidden_state
        l2 = mil_nce(self.similarity_dense(self.cross_pooler(seq)).view(b, b))
        return l1 + l2


model = UnivlSmall().train()
params = sum(p.numel() for p in model.parameters())
decay = [p for n, p in model.named_parameters() if p.ndim > 1]
no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
optim = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=3e-4, betas=(0.9, 0.98))
ids = torch.randint(1000, 30000, (a.batch, a.text_len))
mask = torch.ones(a.batch, a.text_len, dtype=torch.long)
video = torch.randn(a.batch, 3, a.frames, a.size, a.size)

times, loss = [], float("nan")
for i in range(a.warmup + a.iters):
    t = time.perf_counter()
    optim.zero_grad(set_to_none=True)
    out = model(ids, mask, video)
    out.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optim.step()
    loss = out.item()
    if i >= a.warmup:
        times.append(time.perf_counter() - t)
times.sort()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"# torch {torch.__version__}, eager, video [{a.batch}, 3, {a.frames}, {a.size}, {a.size}], text "
      f"[{a.batch}, {a.text_len}], {params / 1e6:.1f} M parameters; median (min) of {len(times)} steps after "
      f"{a.warmup} warm-up; torch.set_num_threads({a.threads}); peak RSS {rss:.0f} MiB; load {os.getloadavg()[0]:.2f}")
print("| backend | s / step | steps/s | last loss |\n|---|---|---|---|")
print(f"| torch eager | {statistics.median(times):.3f} ({times[0]:.3f}) | {1 / statistics.median(times):.2f} | {loss:.4f} |")
