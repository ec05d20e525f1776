"""The PyTorch peer: timm EfficientNet-Lite0 fine-tuned on flowers (160 px).

The same weights kerastune_ft loads through keras-hub (the timm-format
folder `weights/efficientnet_lite0_timm_format`), and the recipe
`kft.fine_tune` runs with kerastune_ft's defaults, written in plain PyTorch:

- `frozen`: Dropout 0.2 + Linear on the pooled features of the frozen
  backbone (BatchNorm in eval mode), AdamW (1e-3, weight decay 1e-4), a
  cosine schedule after a 10% warmup, batch 32, at most 20 epochs, early
  stopping on validation loss (patience 5) restoring the best weights.
- `full`: the frozen stage, then the whole network unfrozen (BatchNorm still
  in eval mode, as kerastune_ft keeps it) for 5 more epochs at 1e-4, early
  stopping across both stages.

A strong peer: the photos are decoded once (Pillow, as kerastune_ft does),
put on the GPU once as uint8, and batches are sliced there; the backbone
still runs every epoch (no feature caching: the usual PyTorch loop).

    python benchmarks/gpu/timm_peer.py --mode frozen|full [--amp bf16]
"""

import copy
import math
import time

began = time.perf_counter()
import _gpu  # noqa: E402
import torch  # noqa: E402

HEAD_EPOCHS = _gpu.MAX_EPOCHS
FULL_EPOCHS = 5
PATIENCE = 5
BATCH = 32


def build(device):
    import timm
    from safetensors.torch import load_file

    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=1000)
    state = load_file(str(_gpu.LITE0 / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise RuntimeError(f"weights do not fit: {missing[:5]} {unexpected[:5]}")
    model.reset_classifier(0)  # the pooled 1280-vector
    head = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(1280, 5))
    return model.to(device).eval(), head.to(device)


def to_input(xb):
    """uint8 NHWC on the device -> float NCHW in [-1, 1] (the preset's scaling)."""
    return (xb.permute(0, 3, 1, 2).float() - 127.5) / 127.5


def cosine(optimizer, steps, warmup=0.1):
    warm = max(1, int(steps * warmup))

    def factor(step):
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def main():
    args = _gpu.child_args()
    mode = args.get("--mode", "frozen")
    amp = args.get("--amp") == "bf16"
    torch.manual_seed(_gpu.SEED)
    torch.backends.cudnn.benchmark = True
    # JAX runs float32 convolutions and matmuls in TF32 on this GPU by default.
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    import_s = time.perf_counter() - began
    phases = _gpu.Phases()
    with phases("decode"):
        (x, y), (xv, yv) = _gpu.flowers()
    with phases("to_device"):
        x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).long().to(device)
        xv, yv = torch.from_numpy(xv).to(device), torch.from_numpy(yv).long().to(device)
    with phases("build"):
        backbone, head = build(device)
    loss_fn = torch.nn.CrossEntropyLoss()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    generator = torch.Generator(device=device).manual_seed(_gpu.SEED)

    def validate():
        head.eval()
        total, correct, n = 0.0, 0, len(xv)
        with torch.no_grad(), autocast:
            for i in range(0, n, 256):
                logits = head(backbone(to_input(xv[i : i + 256]))).float()
                total += loss_fn(logits, yv[i : i + 256]).item() * len(logits)
                correct += (logits.argmax(1) == yv[i : i + 256]).sum().item()
        return total / n, correct / n

    best = {"loss": float("inf"), "state": None, "acc": 0.0}
    epoch_seconds = []
    history = []

    def stage(epochs, lr, train_backbone):
        for p in backbone.parameters():
            p.requires_grad_(train_backbone)
        params = list(head.parameters())
        if train_backbone:
            params += list(backbone.parameters())
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
        steps_per_epoch = math.ceil(len(x) / BATCH)
        scheduler = cosine(optimizer, epochs * steps_per_epoch)
        waited = 0
        for _ in range(epochs):
            start = time.perf_counter()
            head.train()
            order = torch.randperm(len(x), device=device, generator=generator)
            for i in range(0, len(x), BATCH):
                idx = order[i : i + BATCH]
                with autocast:
                    if train_backbone:
                        feats = backbone(to_input(x[idx]))
                    else:
                        with torch.no_grad():
                            feats = backbone(to_input(x[idx]))
                    loss = loss_fn(head(feats).float(), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
            val_loss, val_acc = validate()
            epoch_seconds.append(time.perf_counter() - start)
            history.append((round(val_loss, 4), round(val_acc, 4)))
            if val_loss < best["loss"]:
                best.update(loss=val_loss, acc=val_acc)
                best["state"] = (
                    copy.deepcopy(backbone.state_dict()),
                    copy.deepcopy(head.state_dict()),
                )
                waited = 0
            else:
                waited += 1
                if waited >= PATIENCE:
                    break

    with phases("head_stage"):
        stage(HEAD_EPOCHS, 1e-3, train_backbone=False)
    if mode == "full":
        with phases("full_stage"):
            stage(FULL_EPOCHS, 1e-4, train_backbone=True)
    with phases("evaluate"):
        backbone.load_state_dict(best["state"][0])
        head.load_state_dict(best["state"][1])
        _, accuracy = validate()
        torch.cuda.synchronize()
    _gpu.emit(
        {
            "impl": f"timm {mode}" + (" bf16" if amp else ""),
            "seconds": round(phases.total(), 2),
            "import_s": round(import_s, 2),
            "val_accuracy": round(accuracy, 4),
            "phases": {k: round(v, 2) for k, v in phases.seconds.items()},
            "history": history,
            **_gpu.epoch_summary(epoch_seconds),
            "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "versions": {"torch": torch.__version__},
        }
    )


if __name__ == "__main__":
    main()
