#!/usr/bin/env python3
"""Builds tiny random-weight Hugging Face models of every shape troupe supports, with transformers' own classes,
and stores each with the logits transformers computes for a few seeded prompts (tests/fixtures/hf/<name>/).

Each folder holds what save_pretrained writes (config.json, generation_config.json, safetensors, and the index
for the sharded case) and expected.json: per prompt the ids, the float32 logits of the last position (all of the
vocabulary, 7 significant digits) and the argmax at every position. 16-bit fixtures are saved in their dtype and
reloaded in float32 for the reference, so the reference sees exactly the stored values. Run it where torch and
transformers are installed (scripts/gpu_fixtures.sh runs it on the lent GPU machine):

    python3 scripts/make_hf_fixtures.py --out tests/fixtures/hf
"""

import argparse
import json
import math
import os
import platform
import shutil
import sys

import torch
import transformers
from safetensors import safe_open
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

V5 = int(transformers.__version__.split(".")[0]) >= 5
TOLERANCE = 1e-4          # what the C++ test allows: max|troupe - hf| / max|hf| over the last position
MIN_TOP2_GAP = 1e-3       # each position's top-2 logit gap, relative to its max |logit|, so argmax is stable
BASE_LENGTHS = [1, 7, 16, 17, 40]

# name -> arch: (config class, model class); stored: dtype of the saved weights; seed; about; cfg: config fields
# beyond the common ones; theta: rope_theta; rope: rope scaling; extra_lengths: more prompts; shards: (min, max);
# legacy: config.json rewritten in the form of transformers 4 (and of most published checkpoints)
CASES = {
    "llama_gqa": dict(
        arch=(LlamaConfig, LlamaForCausalLM), stored="float32", seed=11,
        about="Llama, 8 heads over 2 KV heads, explicit head_dim 16 (8*16 != hidden 64), untied lm_head",
        cfg=dict(vocab_size=256, intermediate_size=128, num_attention_heads=8, num_key_value_heads=2, head_dim=16,
                 tie_word_embeddings=False), theta=10000.0),
    "llama_mha_tied": dict(
        arch=(LlamaConfig, LlamaForCausalLM), stored="float32", seed=12,
        about="Llama, 4 heads = 4 KV heads, tied embeddings, rope_theta 500000",
        cfg=dict(vocab_size=320, intermediate_size=160, num_attention_heads=4, num_key_value_heads=4, head_dim=16,
                 tie_word_embeddings=True), theta=500000.0),
    "llama3_rope": dict(
        arch=(LlamaConfig, LlamaForCausalLM), stored="bfloat16", seed=13, legacy="rope_type",
        about="Llama 3 rope scaling (factor 8, low 1, high 4, original 64: all three frequency bands occur), "
              "weights stored in bfloat16, config.json in the legacy form of Llama 3.1's (rope_scaling with "
              "rope_type, top-level rope_theta, torch_dtype)",
        cfg=dict(vocab_size=384, intermediate_size=176, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                 tie_word_embeddings=False, max_position_embeddings=512), theta=10000.0,
        rope=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                  original_max_position_embeddings=64)),
    "llama_linear_rope": dict(
        arch=(LlamaConfig, LlamaForCausalLM), stored="float16", seed=14, legacy="type",
        about="Llama, linear rope scaling factor 2, weights stored in float16, config.json in the oldest form "
              "(rope_scaling with \"type\", top-level rope_theta, torch_dtype)",
        cfg=dict(vocab_size=256, intermediate_size=144, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                 tie_word_embeddings=False), theta=10000.0,
        rope=dict(rope_type="linear", factor=2.0)),
    "llama_attention_bias": dict(
        arch=(LlamaConfig, LlamaForCausalLM), stored="float32", seed=15,
        about="Llama with attention_bias: q, k, v and o projections all carry biases",
        cfg=dict(vocab_size=288, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                 tie_word_embeddings=False, attention_bias=True), theta=10000.0),
    "mistral_swa": dict(
        arch=(MistralConfig, MistralForCausalLM), stored="float32", seed=16, extra_lengths=[64],
        about="Mistral, sliding_window 8, 4 heads over 1 KV head",
        cfg=dict(vocab_size=256, intermediate_size=128, num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                 tie_word_embeddings=False, sliding_window=8), theta=10000.0),
    "qwen2_bias_tied": dict(
        arch=(Qwen2Config, Qwen2ForCausalLM), stored="float32", seed=17,
        about="Qwen2: q/k/v biases (no o bias), tied embeddings, rope_theta 1e6, no sliding window",
        cfg=dict(vocab_size=352, intermediate_size=160, num_attention_heads=4, num_key_value_heads=2,
                 tie_word_embeddings=True, use_sliding_window=False), theta=1000000.0),
    "llama_sharded": dict(
        arch=(LlamaConfig, LlamaForCausalLM), stored="float32", seed=18, shards=(2, 4),
        about="like llama_gqa, saved in several safetensors shards with model.safetensors.index.json",
        cfg=dict(vocab_size=256, intermediate_size=128, num_attention_heads=8, num_key_value_heads=2, head_dim=16,
                 tie_word_embeddings=False), theta=10000.0),
}

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def make_config(case):
    cfg_cls = case["arch"][0]
    fields = dict(hidden_size=64, num_hidden_layers=2, max_position_embeddings=256, rms_norm_eps=1e-5,
                  bos_token_id=1, eos_token_id=2)
    fields.update(case["cfg"])
    rope = dict(case.get("rope") or {"rope_type": "default"})
    if V5:  # transformers 5 keeps rope_theta and the scaling together in rope_parameters
        rope["rope_theta"] = case["theta"]
        fields["rope_parameters"] = rope
    else:
        fields["rope_theta"] = case["theta"]
        if case.get("rope"):
            fields["rope_scaling"] = rope
    return cfg_cls(**fields)


def init_weights(model, seed):
    """Non-trivial random weights: matrices N(0, 0.25^2), norms 1 +- 0.1, biases N(0, 0.2^2)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if "norm" in name:
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.2 * noise)
            elif "embed_tokens" in name:
                p.copy_(0.5 * noise)
            else:
                p.copy_(0.25 * noise)


def load(model_cls, folder, dtype, **overrides):
    key = "dtype" if V5 else "torch_dtype"
    model = model_cls.from_pretrained(folder, attn_implementation="eager", **{key: dtype}, **overrides)
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    return model.eval()


def logits_of(model, ids):
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0]


def top2_gap(logits):
    """Per position: (top1 - top2) / max|logit|."""
    top = logits.topk(2, dim=-1).values
    return ((top[:, 0] - top[:, 1]) / logits.abs().amax(dim=-1)).min().item()


def rel_diff(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def sig(x, digits=7):
    return float(f"{x:.{digits}g}")


def make_prompts(model64, model32, vocab, lengths, seed):
    """Seeded random ids; a prompt is drawn again while some position's top-2 gap is too small."""
    gen = torch.Generator().manual_seed(1000 + seed)
    prompts = []
    for length in lengths:
        for attempt in range(200):
            ids = torch.randint(0, vocab, (length,), generator=gen).tolist()
            logits = logits_of(model32, ids)
            gap = top2_gap(logits)
            if gap >= MIN_TOP2_GAP:
                break
        else:
            raise RuntimeError(f"no prompt of length {length} with a stable argmax")
        ref64 = logits_of(model64, ids)
        err = rel_diff(logits[-1].double(), ref64[-1])
        assert err < 1e-5, f"float32 reference off float64 by {err}"
        prompts.append(dict(ids=ids, argmax=logits.argmax(dim=-1).tolist(),
                            last_logits=[sig(v) for v in logits[-1].tolist()],
                            min_top2_gap_rel=sig(gap, 4), f32_vs_f64_rel=sig(err, 3), redraws=attempt))
    return prompts


def rewrite_legacy(folder, case):
    """Rewrites config.json as transformers 4 wrote it: rope_theta at the top, rope_scaling (scaling type under
    the key case["legacy"]) or nothing, torch_dtype. transformers must read it back to the same model."""
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    rope = cfg.pop("rope_parameters")
    assert rope["rope_theta"] == case["theta"], rope
    cfg["rope_theta"] = rope.pop("rope_theta")
    rope_type = rope.pop("rope_type")
    cfg["rope_scaling"] = {case["legacy"]: rope_type, **rope} if rope_type != "default" else None
    cfg["torch_dtype"] = cfg.pop("dtype")
    with open(path, "w") as f:
        json.dump(dict(sorted(cfg.items())), f, indent=2)
        f.write("\n")


def scaled_inv_freq(plain, rope):
    """The scaled frequencies written out independently of transformers (linear; Llama 3's three bands)."""
    if rope is None:
        return plain
    if rope["rope_type"] == "linear":
        return plain / rope["factor"]
    orig, factor = rope["original_max_position_embeddings"], rope["factor"]
    low, high = rope["low_freq_factor"], rope["high_freq_factor"]
    out = []
    for f in plain.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < orig / high:
            out.append(f)
        elif wavelen > orig / low:
            out.append(f / factor)
        else:
            smooth = (orig / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return torch.tensor(out, dtype=torch.float64)


def check_rope(model, case):
    """The rope scaling really changed the frequencies: compare with the unscaled ones."""
    rot = model.model.rotary_emb
    inv_freq = rot.inv_freq.double()
    dim = inv_freq.numel() * 2
    plain = 1.0 / (case["theta"] ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    scaled = case.get("rope") is not None
    differs = not torch.allclose(inv_freq, plain, rtol=1e-5)
    assert differs == scaled, f"rope frequencies scaled={differs}, expected {scaled}"
    want = scaled_inv_freq(plain, case.get("rope"))
    assert torch.allclose(inv_freq, want, rtol=1e-5), f"rope frequencies {inv_freq} != {want}"
    return dict(inv_freq=[sig(v) for v in inv_freq.tolist()],
                attention_scaling=float(getattr(rot, "attention_scaling", 1.0)))


def check_sliding_window(model_cls, folder, model32, vocab, window):
    """Eager attention really applies the window, and its semantics are: query i sees keys j with i - j < window.
    With 2 layers the last position of a 40-token prompt then depends on tokens 39 - 2*(window-1) onwards only."""
    gen = torch.Generator().manual_seed(4242)
    ids = torch.randint(0, vocab, (40,), generator=gen).tolist()
    base = logits_of(model32, ids)[-1]
    full = logits_of(load(model_cls, folder, torch.float32, sliding_window=None), ids)[-1]
    window_vs_full = rel_diff(full, base)
    assert window_vs_full > 1e-3, f"sliding window had no effect ({window_vs_full})"
    first = 39 - 2 * (window - 1)

    def changed_at(pos):
        other = list(ids)
        other[pos] = (other[pos] + 1) % vocab
        return rel_diff(logits_of(model32, other)[-1], base)

    outside, inside = changed_at(first - 1), changed_at(first)
    assert outside < 1e-6 and inside > 1e-4, f"window semantics: outside {outside}, inside {inside}"
    return dict(semantics="query i attends keys j with 0 <= i - j < sliding_window",
                rel_diff_vs_no_window=sig(window_vs_full, 4),
                earliest_token_seen_by_position_39=first,
                rel_change_from_token_before_it=sig(outside, 3), rel_change_from_it=sig(inside, 4))


def tensor_list(folder, shards):
    """name -> [dtype, shape, file] of every stored tensor, to help whoever debugs the loader."""
    tensors = {}
    for shard in shards:
        with safe_open(os.path.join(folder, shard), framework="pt") as f:
            for key in f.keys():
                t = f.get_slice(key)
                tensors[key] = [t.get_dtype(), list(t.get_shape()), shard]
    return dict(sorted(tensors.items()))


def build(name, case, root, machine):
    model_cls = case["arch"][1]
    folder = os.path.join(root, name)
    shutil.rmtree(folder, ignore_errors=True)
    config = make_config(case)
    model = model_cls(config)
    init_weights(model, case["seed"])
    if config.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model = model.to(DTYPES[case["stored"]])
    save = {}
    if "shards" in case:
        total = sum(p.numel() * p.element_size() for p in model.parameters())
        save["max_shard_size"] = int(total * 0.4)
    model.save_pretrained(folder, **save)
    if case.get("legacy"):
        rewrite_legacy(folder, case)
    files = sorted(os.listdir(folder))
    shards = [f for f in files if f.endswith(".safetensors")]
    lo, hi = case.get("shards", (1, 1))
    assert lo <= len(shards) <= hi, f"{name}: {len(shards)} safetensors files: {files}"
    if len(shards) > 1:
        assert "model.safetensors.index.json" in files, files

    model32 = load(model_cls, folder, torch.float32)
    model64 = load(model_cls, folder, torch.float64)
    for p in model32.parameters():
        assert p.dtype == torch.float32
    checks = dict(config_form="transformers 4 (rope_scaling, rope_theta, torch_dtype)" if case.get("legacy")
                  else f"transformers {transformers.__version__} as saved", rope=check_rope(model32, case))
    if case["cfg"].get("sliding_window"):
        checks["sliding_window"] = check_sliding_window(model_cls, folder, model32, config.vocab_size,
                                                        case["cfg"]["sliding_window"])
    lengths = BASE_LENGTHS + case.get("extra_lengths", [])
    prompts = make_prompts(model64, model32, config.vocab_size, lengths, case["seed"])
    tensors = tensor_list(folder, shards)
    expected = dict(
        fixture=name, about=case["about"], architecture=type(model32).__name__, stored_dtype=case["stored"],
        files=files, tensors=tensors, seed=case["seed"], vocab_size=config.vocab_size,
        reference=dict(library="transformers", attn_implementation="eager", compute_dtype="float32",
                       compute_device="cpu", note="reloaded from this folder in float32; logits rounded to 7 "
                       "significant digits; float64 run agrees within f32_vs_f64_rel"),
        metric="max_v |troupe[v] - hf[v]| / max_v |hf[v]| over the last position's logits; argmax equal at "
               "every position",
        tolerance=TOLERANCE, machine=machine,
        versions=dict(torch=torch.__version__, transformers=transformers.__version__,
                      python=platform.python_version()),
        checks=checks, prompts=prompts)
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    print(f"{name}: {len(shards)} shard(s), {size} bytes, lm_head stored {'lm_head.weight' in tensors}, redraws "
          f"{[p['redraws'] for p in prompts]}, min gap {min(p['min_top2_gap_rel'] for p in prompts)}, "
          f"f32 vs f64 {max(p['f32_vs_f64_rel'] for p in prompts)}, checks {json.dumps(checks)}")
    assert size < 1 << 20, f"{name} is {size} bytes"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder that receives one subfolder per fixture")
    parser.add_argument("--only", nargs="*", help="build only these fixtures")
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # one summation order, whatever the machine
    machine = dict(host_cpu=platform.processor() or platform.machine(),
                   gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
                   note="weights drawn and logits computed on the CPU in float32")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, gpu {machine['gpu']}")
    os.makedirs(args.out, exist_ok=True)
    for name, case in CASES.items():
        if not args.only or name in args.only:
            build(name, case, args.out, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
