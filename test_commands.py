"""The documented "exactly the paper / the seed report" commands: the README and each trainer's --help
give the same command, and on a CPU (where the defaults move) it sets what the paper or report used."""
import os
import re
import shlex

import torch.nn as nn

import train_cgan
import train_infogan
from models import build_cgan

HERE = os.path.dirname(os.path.abspath(__file__))


def readme_command(script, marker):
    """The README line that runs script with marker in it, as argv after the script's name."""
    with open(os.path.join(HERE, "README.md")) as f:
        lines = [line.strip() for line in f if line.startswith(f"python {script} ") and marker in line]
    assert len(lines) == 1, f"expected one README command for {script} with {marker!r}, found {lines}"
    return shlex.split(lines[0])[2:]


def resolved(module, argv):
    args = module.get_parser().parse_args(argv + ["--device", "cpu"])
    module.validate(args)
    return args


def squeezed(text):
    return re.sub(r"\s+", " ", text)


def test_infogan_paper_command_changes_only_the_three_departures():
    argv = readme_command("train_infogan.py", "--lambda-aug 0")
    assert " ".join(argv) in squeezed(train_infogan.__doc__)  # --help prints the module docstring
    paper, defaults = vars(resolved(train_infogan, argv)), vars(resolved(train_infogan, []))
    changed = {k: (defaults[k], paper[k]) for k in paper if paper[k] != defaults[k]}
    assert changed == {"lambda_aug": (2.0, 0.0), "lr_g": (2e-3, 1e-3), "g_ema": (0.999, 0.0)}
    # the paper's MNIST settings (Chen et al. 2016, appendix C.1), which the defaults keep
    assert (paper["noise_dim"], paper["n_cat"], paper["n_cont"], paper["lr_d"], paper["beta1"]) == (62, 10, 2, 2e-4, 0.5)


def test_cgan_seed_002_command_sets_the_reports_settings_on_a_cpu():
    argv = readme_command("train_cgan.py", "--loss wgan-gp")
    assert " ".join(argv) in squeezed(train_cgan.__doc__)
    namespace = resolved(train_cgan, argv)
    args = vars(namespace)
    # seed 002: WGAN-GP (5 critic steps, penalty 10, Adam 2e-4 with betas (0, 0.9)), batch 128, z of 100,
    # 64x64 DCGAN networks of width 64, a critic with InstanceNorm, y concatenated to z and as D's extra channel
    expected = {"loss": "wgan-gp", "n_critic": 5, "gp_weight": 10.0, "lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.0,
                "beta2": 0.9, "batch_size": 128, "noise_dim": 100, "img_size": 64, "g_width": 64, "d_width": 64,
                "d_norm": "instance", "cond": "concat", "g_cond": "concat", "g_upsample": False,
                # none of the toolkit's additions
                "aux_weight": 0.0, "augment": False, "g_ema": 0.0, "spectral_weight": 0.0}
    assert {k: args[k] for k in expected} == expected
    netG, netD = build_cgan(train_cgan.model_config(namespace))
    first_g = netG.net.net[0]
    assert isinstance(first_g, nn.ConvTranspose2d) and first_g.in_channels == 100 + 24 and first_g.out_channels == 512
    assert not any(isinstance(m, nn.Upsample) for m in netG.modules())
    assert netD.body.net[0].in_channels == 3 + 1 and netD.aux_body is None
    assert any(isinstance(m, nn.InstanceNorm2d) for m in netD.modules())
