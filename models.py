"""The networks: InfoGAN (MNIST), conditional GAN (i-CLEVR) and the i-CLEVR evaluator.

Every model is a plain nn.Module built from a small config dict, so a checkpoint that
stores the dict can rebuild its model with nothing else (see build_infogan / build_cgan).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

INFOGAN_ARCHS = ("paper", "dcgan", "upsample")
INFOGAN_IMG_SIZE = {"paper": 28, "dcgan": 64, "upsample": 64}


def dcgan_init(module):
    """DCGAN weight init (Radford et al.): conv/linear weights ~ N(0, 0.02), norm gains ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d)) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------------------
# InfoGAN
# ----------------------------------------------------------------------------------------

class PaperGenerator(nn.Module):
    """InfoGAN paper, Table 1 (MNIST): FC 1024 - FC 7x7x128 - upconv 64 - upconv 1, 28x28.
    fc_width: the first FC layer (the paper's 1024; see build_infogan)."""

    def __init__(self, latent_dim, fc_width=1024):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, fc_width, bias=False), nn.BatchNorm1d(fc_width), nn.ReLU(True),
            nn.Linear(fc_width, 128 * 7 * 7, bias=False), nn.BatchNorm1d(128 * 7 * 7), nn.ReLU(True),
        )
        self.upconv = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(True),
            nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Tanh(),
        )

    def forward(self, z):
        return self.upconv(self.fc(z).view(-1, 128, 7, 7))


class PaperBody(nn.Module):
    """The part of D that Q shares: conv 64 - conv 128 - FC 1024 (leaky ReLU 0.1, as in the paper)."""

    def __init__(self, fc_width=1024):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 64, 4, 2, 1), nn.LeakyReLU(0.1, True),
            nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.1, True),
            nn.Flatten(),
            nn.Linear(128 * 7 * 7, fc_width, bias=False), nn.BatchNorm1d(fc_width), nn.LeakyReLU(0.1, True),
        )
        self.out_features = fc_width

    def forward(self, x):
        return self.net(x)


class CondBatchNorm2d(nn.Module):
    """BatchNorm whose gain and bias are set by the condition (de Vries et al. 2017; SN-GAN, BigGAN):
    gain = 1 + W_g y, bias = W_b y, so every object in a multi-hot y adds its own scale and shift to
    every layer, instead of entering only once at G's input."""

    def __init__(self, num_features, n_classes):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Linear(n_classes, num_features, bias=False)
        self.bias = nn.Linear(n_classes, num_features, bias=False)

    def forward(self, x, y):
        gain = 1 + self.gain(y)[:, :, None, None]
        return self.bn(x) * gain + self.bias(y)[:, :, None, None]


def batch_norm(num_features, n_classes):
    return CondBatchNorm2d(num_features, n_classes) if n_classes else nn.BatchNorm2d(num_features)


class GeneratorBase(nn.Module):
    """Runs self.net layer by layer, handing the condition y to the conditional BatchNorms."""

    def forward(self, z, y=None):
        x = z.view(z.size(0), -1, 1, 1)
        for layer in self.net:
            x = layer(x, y) if isinstance(layer, CondBatchNorm2d) else layer(x)
        return x


class DCGANGenerator(GeneratorBase):
    """64x64 transposed-convolution generator of the DCGAN paper (as in the 64-px reports).
    n_classes > 0: conditional BatchNorm (see CondBatchNorm2d)."""

    def __init__(self, latent_dim, out_channels=1, img_size=64, width=64, n_classes=0):
        super().__init__()
        n_up = int(math.log2(img_size)) - 3  # 4x4 -> img_size/2 by stride-2 upconvs, then the last one
        ch = width * 2 ** n_up
        layers = [nn.ConvTranspose2d(latent_dim, ch, 4, 1, 0, bias=False), batch_norm(ch, n_classes), nn.ReLU(True)]
        for _ in range(n_up):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), batch_norm(ch // 2, n_classes),
                       nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, out_channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)


class UpsampleGenerator(GeneratorBase):
    """Nearest-neighbour upsample + 3x3 conv instead of transposed convs: no checkerboard artifacts
    (Odena et al., "Deconvolution and Checkerboard Artifacts", 2016). n_classes: as DCGANGenerator."""

    def __init__(self, latent_dim, out_channels=1, img_size=64, width=64, n_classes=0):
        super().__init__()
        n_up = int(math.log2(img_size)) - 2
        ch = width * 2 ** (n_up - 1)
        layers = [nn.ConvTranspose2d(latent_dim, ch, 4, 1, 0, bias=False), batch_norm(ch, n_classes), nn.ReLU(True)]
        for _ in range(n_up):
            out = max(ch // 2, width // 2)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(ch, out, 3, 1, 1, bias=False), batch_norm(out, n_classes), nn.ReLU(True)]
            ch = out
        layers += [nn.Conv2d(ch, out_channels, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)


class ConvBody(nn.Module):
    """DCGAN discriminator body, img_size -> 4x4 feature map, flattened.
    norm: 'batch' (DCGAN), 'instance' (WGAN-GP critic), 'spectral' (spectral norm, no BN) or 'none'.
    refine: a 3x3 convolution after each downsampling but the last (D's classifier body: with them it
    reads the objects of real scenes far better after the CPU hour, docs/results.md)."""

    def __init__(self, in_channels=1, img_size=64, width=64, norm="batch", refine=False):
        super().__init__()
        n_down = int(math.log2(img_size)) - 2
        sn = spectral_norm if norm == "spectral" else (lambda m: m)
        layers, ch = [sn(nn.Conv2d(in_channels, width, 4, 2, 1)), nn.LeakyReLU(0.2, True)], width
        for _ in range(n_down - 1):
            if refine:
                layers += [nn.Conv2d(ch, ch, 3, 1, 1), nn.LeakyReLU(0.2, True)]
            layers.append(sn(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=norm in ("spectral", "none"))))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(ch * 2))
            elif norm == "instance":
                layers.append(nn.InstanceNorm2d(ch * 2, affine=True))
            layers.append(nn.LeakyReLU(0.2, True))
            ch *= 2
        layers.append(nn.Flatten())
        self.net = nn.Sequential(*layers)
        self.out_features = ch * 4 * 4

    def forward(self, x):
        return self.net(x)


class InfoGANDiscriminator(nn.Module):
    """D and Q in one module: a shared body, a real/fake head (d_head) and a code head (q_head).

    q_head predicts the categorical code (logits) and, for each continuous code, the mean and
    log-variance of a Gaussian Q(c|x)."""

    def __init__(self, body, n_cat, n_cont, spectral=False):
        super().__init__()
        self.n_cat, self.n_cont = n_cat, n_cont
        self.body = body
        sn = spectral_norm if spectral else (lambda m: m)
        self.d_head = sn(nn.Linear(body.out_features, 1))
        self.q_head = nn.Sequential(
            nn.Linear(body.out_features, 128, bias=False), nn.BatchNorm1d(128), nn.LeakyReLU(0.1, True),
            nn.Linear(128, n_cat + 2 * n_cont),
        )

    def forward(self, x):
        """Returns the real/fake logit (N,) and the shared features for q()."""
        features = self.body(x)
        return self.d_head(features).view(-1), features

    def q(self, features):
        out = self.q_head(features)
        cat_logits = out[:, :self.n_cat]
        cont_mean, cont_logvar = out[:, self.n_cat:self.n_cat + self.n_cont], out[:, self.n_cat + self.n_cont:]
        # bounded log-variance keeps the Gaussian NLL finite early in training
        return cat_logits, cont_mean, cont_logvar.clamp(-5.0, 5.0)


def build_infogan(config):
    """Generator and D/Q network for a config dict with arch, noise_dim, n_cat, n_cont. The trainer
    never sets fc_width (the paper's FC layers are 1024 wide): the tests' runs record a narrower one in
    their checkpoints, whose files are a twelfth of the size, to test saving and resuming faster."""
    arch, latent_dim = config["arch"], config["noise_dim"] + config["n_cat"] + config["n_cont"]
    if arch == "paper":
        fc_width = config.get("fc_width", 1024)
        netG, body, spectral = PaperGenerator(latent_dim, fc_width), PaperBody(fc_width), False
    elif arch == "dcgan":
        netG, body, spectral = DCGANGenerator(latent_dim), ConvBody(1, 64, norm="batch"), False
    elif arch == "upsample":
        netG, body, spectral = UpsampleGenerator(latent_dim), ConvBody(1, 64, norm="spectral"), True
    else:
        raise ValueError(f"unknown arch {arch!r}; choose from {', '.join(INFOGAN_ARCHS)}")
    netD = InfoGANDiscriminator(body, config["n_cat"], config["n_cont"], spectral=spectral)
    dcgan_init(netG)
    dcgan_init(netD)
    return netG, netD


# ----------------------------------------------------------------------------------------
# Conditional GAN (i-CLEVR)
# ----------------------------------------------------------------------------------------

class CondGenerator(nn.Module):
    """G(z, y): the multi-hot condition y is concatenated to the noise (as coursework reports build it);
    g_cond='cbn' also feeds it to every BatchNorm of G (conditional BatchNorm)."""

    def __init__(self, noise_dim, n_classes, img_size=64, width=64, upsample=False, g_cond="concat"):
        super().__init__()
        self.noise_dim = noise_dim
        Net = UpsampleGenerator if upsample else DCGANGenerator
        self.net = Net(noise_dim + n_classes, out_channels=3, img_size=img_size, width=width,
                       n_classes=n_classes if g_cond == "cbn" else 0)

    def forward(self, z, y):
        return self.net(torch.cat([z, y], dim=1), y)


class CondDiscriminator(nn.Module):
    """D(x, y) for multi-hot conditions.

    cond='concat': y is projected by a linear layer to one extra image channel (as coursework reports do).
    cond='projection': the projection discriminator (Miyato & Koyama, 2018): score =
        psi(phi(x)) + <embed(y), phi(x)>, where embed(y) sums the embeddings of the present objects.
    Both also give multi-label logits from aux_head for the optional auxiliary classifier loss, read
    from D's body (aux_body='shared', as AC-GAN, Odena et al. 2017) or from a body of its own without
    spectral norm ('separate', with aux_refine's 3x3 convolutions): spectral norm keeps D smooth for the
    game but slows the classifier that tells G which object is which (docs/results.md)."""

    def __init__(self, n_classes, img_size=64, width=64, cond="projection", norm="spectral", aux_body="shared",
                 aux_refine=False):
        super().__init__()
        self.cond, self.img_size = cond, img_size
        sn = spectral_norm if norm == "spectral" else (lambda m: m)
        if cond == "concat":
            self.cond_to_channel = nn.Linear(n_classes, img_size * img_size)
        self.body = ConvBody(3 + (cond == "concat"), img_size, width, norm=norm)
        self.d_head = sn(nn.Linear(self.body.out_features, 1))
        if cond == "projection":
            self.embed = sn(nn.Linear(n_classes, self.body.out_features, bias=False))
        self.aux_body = ConvBody(3, img_size, width, norm="none", refine=aux_refine) if aux_body == "separate" else None
        self.aux_head = nn.Linear(self.body.out_features, n_classes)

    def forward(self, x, y, with_aux=True):
        """Returns (score (N,), multi-label logits (N, n_classes), or None without with_aux: the
        classifier's own body need not run where its logits go unused)."""
        aux_features = self.aux_body(x) if with_aux and self.aux_body is not None else None
        if self.cond == "concat":
            y_channel = self.cond_to_channel(y).view(-1, 1, self.img_size, self.img_size)
            x = torch.cat([x, y_channel], dim=1)
        features = self.body(x)
        score = self.d_head(features).view(-1)
        if self.cond == "projection":
            score = score + (self.embed(y) * features).sum(dim=1)
        if not with_aux:
            return score, None
        return score, self.aux_head(features if aux_features is None else aux_features)


def build_cgan(config):
    netG = CondGenerator(config["noise_dim"], config["n_classes"], config["img_size"],
                         config["g_width"], upsample=config.get("g_upsample", False),
                         g_cond=config.get("g_cond", "concat"))
    netD = CondDiscriminator(config["n_classes"], config["img_size"], config["d_width"],
                             cond=config["cond"], norm=config["d_norm"], aux_body=config.get("aux_body", "shared"),
                             aux_refine=config.get("aux_refine", False))  # .get: checkpoints from before these keys
    dcgan_init(netG)
    dcgan_init(netD)
    return netG, netD


# ----------------------------------------------------------------------------------------
# The i-CLEVR evaluator (the coursework's classifier, same layout as its checkpoint.pth)
# ----------------------------------------------------------------------------------------

def build_evaluator(n_classes=24):
    """ResNet-18 with fc = Sequential(Linear(512, 24), Sigmoid()): state_dict keys match the
    coursework's evaluator, so its checkpoint loads unchanged."""
    from torchvision.models import resnet18
    net = resnet18(weights=None)
    net.fc = nn.Sequential(nn.Linear(512, n_classes), nn.Sigmoid())
    return net


def topk_hits(probs, labels):
    """Per image and object: 1 where a true object is among the image's k highest outputs (k = the
    number of objects in its condition), else 0."""
    hits = torch.zeros_like(labels, dtype=torch.float)
    for i, (p, y) in enumerate(zip(probs, labels)):
        top = p.topk(int(y.sum().item())).indices
        hits[i, top] = y[top].float()
    return hits


def topk_accuracy(probs, labels):
    """The coursework's metric: per image take the k highest outputs, k = number of objects in its
    condition, count how many are among the true objects; divide by the total number of objects."""
    return topk_hits(probs, labels).sum().item() / max(labels.sum().item(), 1)


def upsample_to_64(x):
    """Images of another size -> the evaluator's 64x64 (bilinear), as the coursework upsampled its 32-px scenes."""
    return F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False) if x.shape[-1] != 64 else x


def evaluator_probs(evaluator, images, batch_size=64):
    """Sigmoid outputs for images in [-1, 1]; smaller images are upsampled to the evaluator's 64x64."""
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            out.append(evaluator(upsample_to_64(images[i:i + batch_size])).float())
    return torch.cat(out)


# ----------------------------------------------------------------------------------------
# InfoGAN latent input: [incompressible noise z | one-hot categorical code | continuous codes]
# ----------------------------------------------------------------------------------------

def sample_noise(n, dim, kind, device=None, generator=None):
    """Incompressible noise: U(-1, 1) or N(0, 1)."""
    if kind == "uniform":
        return torch.rand(n, dim, device=device, generator=generator) * 2 - 1
    return torch.randn(n, dim, device=device, generator=generator)


def infogan_noise(n, config, device=None, generator=None):
    """n noise vectors as the InfoGAN run of `config` draws them (its dim and kind)."""
    return sample_noise(n, config["noise_dim"], config["noise"], device, generator)


def infogan_latent(noise, cat_code, cont_code, n_cat):
    """Generator input for noise (N, noise_dim), integer cat_code (N,) and cont_code (N, n_cont)."""
    return torch.cat([noise, F.one_hot(cat_code, n_cat).to(noise.dtype), cont_code.to(noise.dtype)], dim=1)


def infogan_grid_latent(config, fixed_noise, sweep_code=None, sweep=(-2.0, 2.0), n_cols=10):
    """Latents of the fixed-noise grid: row r = categorical value r; column c = continuous code
    `sweep_code` at the c-th of n_cols values in [-2, 2] (others 0) with row r's fixed noise.
    With no sweep (or no continuous codes) column c uses fixed noise vector c instead."""
    n_cat, n_cont = config["n_cat"], config["n_cont"]
    rows = torch.arange(n_cat).repeat_interleave(n_cols)
    cols = torch.arange(n_cols).repeat(n_cat)
    cont = torch.zeros(n_cat * n_cols, n_cont)
    if sweep_code is None:
        noise = fixed_noise[cols]
    else:
        noise = fixed_noise[rows]
        cont[:, sweep_code] = torch.linspace(sweep[0], sweep[1], n_cols)[cols]
    return infogan_latent(noise, rows, cont, n_cat)


class DigitClassifier(nn.Module):
    """A small MNIST CNN used to read which digit a generated image shows."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(True), nn.Linear(128, 10),
        )

    def forward(self, x):
        if x.shape[-1] != 28:
            x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False, antialias=True)
        return self.net(x)
