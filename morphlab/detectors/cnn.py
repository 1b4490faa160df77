"""``cnn`` (S-MAD): a small convolutional network trained from scratch on aligned crops.

PyTorch, CPU by default. Two architectures:

* ``"small"`` (default): four blocks of (3x3 conv, batch norm, ReLU) x 2 + 2x2 max-pool
  with ``width``, 2, 4, 8 x ``width`` channels, global average pooling, dropout, one
  logit. About 0.3 M parameters at ``width=16``; trains on the CPU in minutes.
* ``"resnet18"``: ResNet-18 with torchvision's parameter names, so that a local
  ImageNet checkpoint (e.g. ``resnet18-f37072fd.pth``) can initialise it through
  ``init_weights`` — the "known backbone" route when the user has the weights. Nothing
  is ever downloaded.

Training: binary cross-entropy on the logit with the classes balanced by ``pos_weight``,
Adam, ``epochs`` passes over the data in seeded random order, augmentation by horizontal
flips, small translations (reflect padding) and brightness/contrast jitter — no noise or
blur, which would hide the very artefacts to be detected. Inputs are resized to
``input_size`` and normalised with the ImageNet mean and standard deviation. The score is
the logit (higher = more likely a morph). Weights are saved as NumPy arrays in the model
folder; ``init_weights`` is read with ``torch.load(weights_only=True)``, safetensors or
NumPy ``.npz`` — never an arbitrary pickle. Training shows a tqdm bar over epochs x
batches with the epoch and loss (hide it with
:func:`morphlab.detectors._progress.fit_progress`, ``detect train --no-progress``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np

from morphlab.detectors._progress import progress_enabled
from morphlab.detectors.base import SingleImageDetector, register_detector
from morphlab.detectors.preprocess import resize_crops

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ARCHS = ("small", "resnet18")


def import_torch():
    """torch, >= 2.6 (:func:`morphlab.weights.require_safe_torch`: ``init_weights`` files
    are read with ``torch.load(weights_only=True)``, unsafe before 2.6)."""
    from morphlab.weights import require_safe_torch

    return require_safe_torch("the cnn detector (CPU build is enough)")


def build_network(arch: str, width: int = 16, dropout: float = 0.2):
    """The ``torch.nn.Module`` of an architecture, one output logit."""
    torch = import_torch()
    nn = torch.nn
    if arch == "small":
        layers, c_in = [], 3
        for c in (width, 2 * width, 4 * width, 8 * width):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            c_in = c
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                             nn.Linear(c_in, 1))
    if arch == "resnet18":
        return _resnet18(torch, dropout)
    raise ValueError(f"unknown cnn arch {arch!r}; choose one of {', '.join(ARCHS)}")


def _resnet18(torch, dropout: float):
    nn = torch.nn

    class BasicBlock(nn.Module):
        def __init__(self, c_in: int, c: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)
            self.downsample = None
            if stride != 1 or c_in != c:
                self.downsample = nn.Sequential(nn.Conv2d(c_in, c, 1, stride, bias=False), nn.BatchNorm2d(c))

        def forward(self, x):
            idt = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + idt)

    class ResNet18(nn.Module):  # torchvision.models.resnet18 parameter names
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            c_in = 64
            for i, c in enumerate((64, 128, 256, 512), start=1):
                stride = 1 if i == 1 else 2
                setattr(self, f"layer{i}", nn.Sequential(BasicBlock(c_in, c, stride), BasicBlock(c, c, 1)))
                c_in = c
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.dropout = nn.Dropout(dropout)
            self.fc = nn.Linear(512, 1)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))

    return ResNet18()


def read_weights(path: str | Path) -> dict[str, np.ndarray]:
    """A state dict from a local file: ``.safetensors``, ``.npz`` or a PyTorch checkpoint
    (read with ``weights_only=True`` on PyTorch >= 2.6, so no code runs). Values are NumPy
    arrays; anything else is refused as "not a weights file"
    (:func:`morphlab.weights.read_state_dict`)."""
    from morphlab.weights import read_state_dict

    return read_state_dict(path, what="initial weights (init_weights)")


@register_detector("cnn")
class CnnDetector(SingleImageDetector):
    """Small CNN S-MAD, trained from scratch (or from local backbone weights).

    Args:
        arch: ``"small"`` or ``"resnet18"``.
        width: channels of the first block of ``"small"``.
        input_size: side the crops are resized to (pixels).
        epochs: passes over the training data.
        batch_size: training mini-batch size.
        lr: Adam learning rate.
        weight_decay: Adam L2 penalty.
        dropout: dropout before the last layer.
        augment: flips, translations, brightness/contrast jitter while training.
        init_weights: optional local state-dict file to start from (matching parameter
            names and shapes are loaded; the final layer is always trained afresh).
        device: torch device, ``"cpu"`` by default.
        random_state: seeds initialisation, batch order and augmentation.
    """

    crop_size = 96

    def __init__(self, *, arch: str = "small", width: int = 16, input_size: int = 64,
                 epochs: int = 15, batch_size: int = 32, lr: float = 1e-3,
                 weight_decay: float = 1e-4, dropout: float = 0.2, augment: bool = True,
                 init_weights: Optional[str] = None, device: str = "cpu",
                 random_state: Optional[int] = 0) -> None:
        self.arch = arch
        self.width = width
        self.input_size = input_size
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.augment = augment
        self.init_weights = init_weights
        self.device = device
        self.random_state = random_state

    # -- helpers ----------------------------------------------------------------------
    def _tensor(self, X: np.ndarray):
        torch = import_torch()
        x = torch.from_numpy(resize_crops(X, int(self.input_size))).permute(0, 3, 1, 2).float() / 255.0
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (x - mean) / std

    def _augment(self, x, gen):
        torch = import_torch()
        n, _, h, w = x.shape
        flip = torch.rand(n, generator=gen) < 0.5
        x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
        pad = max(1, h // 16)
        xp = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        x = torch.stack([xp[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
        gain = 1.0 + 0.2 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
        bias = 0.2 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * gain + mean + bias

    def _load_init(self, net) -> None:
        torch = import_torch()
        sd = read_weights(self.init_weights)
        own = net.state_dict()
        take = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()
                if k in own and tuple(own[k].shape) == tuple(v.shape) and not k.startswith("fc.")}
        if not take:
            raise ValueError(
                f"{self.init_weights}: no parameter matches the {self.arch!r} network by name "
                f"and shape (expected names like {next(iter(own))!r}, e.g. a torchvision "
                "resnet18 checkpoint for arch='resnet18')"
            )
        net.load_state_dict(take, strict=False)
        log.info("initialised %d of %d tensors from %s", len(take), len(own), self.init_weights)

    # -- contract ---------------------------------------------------------------------
    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        torch = import_torch()
        seed = 0 if self.random_state is None else int(self.random_state)
        with torch.random.fork_rng(devices=[]):  # seed locally, leave the caller's RNG alone
            torch.manual_seed(seed)
            self.net_ = self._train(X, y, torch.Generator().manual_seed(seed))
        return None  # training-mode scores differ (dropout, augmentation): rescore

    def _train(self, X: np.ndarray, y: np.ndarray, gen):
        """The trained network (eval mode); ``gen`` drives batch order and augmentation."""
        torch = import_torch()
        from tqdm import tqdm

        net = build_network(self.arch, int(self.width), float(self.dropout))
        if self.init_weights:
            self._load_init(net)
        dev = torch.device(self.device)
        net.to(dev)
        x_all, y_all = self._tensor(X), torch.from_numpy(y.astype(np.float32))
        pos_weight = torch.tensor([(y == 0).sum() / max((y == 1).sum(), 1)], dtype=torch.float32)
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight.to(dev))
        opt = torch.optim.Adam(net.parameters(), lr=float(self.lr), weight_decay=float(self.weight_decay))
        n, bs = len(x_all), int(self.batch_size)
        net.train()
        epochs, per_epoch = int(self.epochs), -(-n // bs)
        bar = tqdm(total=epochs * per_epoch, desc="training cnn", unit="batch",
                   disable=not progress_enabled())
        for epoch in range(epochs):
            order = torch.randperm(n, generator=gen)
            total = 0.0
            for s in range(0, n, bs):
                idx = order[s:s + bs]
                bar.update(1)
                if len(idx) < 2:  # batch norm needs two samples
                    continue
                xb = x_all[idx]
                if self.augment:
                    xb = self._augment(xb, gen)
                opt.zero_grad()
                loss = loss_fn(net(xb.to(dev)).squeeze(1), y_all[idx].to(dev))
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{total / n:.4f}")
            log.debug("cnn epoch %d/%d: loss %.4f", epoch + 1, epochs, total / n)
        bar.close()
        return net.eval()

    def _decision_function(self, X: np.ndarray) -> np.ndarray:
        torch = import_torch()
        out = []
        with torch.no_grad():
            for s in range(0, len(X), 128):
                x = self._tensor(X[s:s + 128]).to(torch.device(self.device))
                out.append(self.net_(x).squeeze(1).cpu().numpy().astype(np.float64))
        return np.concatenate(out)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        sd = self.net_.state_dict()
        return {"tensors": list(sd)}, {f"net.{k}": v.detach().cpu().numpy() for k, v in sd.items()}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        torch = import_torch()
        net = build_network(self.arch, int(self.width), float(self.dropout))
        missing = [k for k in state["tensors"] if f"net.{k}" not in arrays]
        if missing:
            raise ValueError(f"model arrays lack {len(missing)} tensors (e.g. {missing[0]!r})")
        net.load_state_dict({k: torch.from_numpy(np.asarray(arrays[f"net.{k}"])) for k in state["tensors"]})
        net.eval()
        self.net_ = net.to(torch.device(self.device))
