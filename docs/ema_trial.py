"""Session-7 trial (README, "How --lr-g 2e-3 --g-ema 0.999 were chosen"): train_infogan.py's training,
unchanged, plus moving averages of G with several decays, each judged every epoch.

    PYTHONPATH=. python docs/ema_trial.py --data-root ../shared/data --epochs 3 --seed 1 --lr-g 1e-3 --g-ema 0

Give --g-ema 0: with the trainer's own average on, the accuracy printed as "raw" would be the average's.
"""
import copy, sys
import train_infogan as TI
import training as T

DECAYS = (0.99, 0.995, 0.998, 0.999)
emas, step = {}, [0]
orig_step, orig_acc = TI.train_step, TI.code_digit_accuracy

def train_step(real, G, D, *a, **k):
    out = orig_step(real, G, D, *a, **k)
    if not emas:
        for d in DECAYS:
            emas[d] = copy.deepcopy(G).eval().requires_grad_(False)
    step[0] += 1
    for d, e in emas.items():
        T.ema_update(e, G, min(d, (1 + step[0]) / (10 + step[0])))
    return out

def acc(netG, classifier, config, n, device, *a, **k):
    r = orig_acc(netG, classifier, config, n, device, *a, **k)
    s = " ".join(f"ema{d}={orig_acc(e, classifier, config, n, device)[0]:.3f}" for d, e in emas.items())
    print(f"EMA step {step[0]} raw={r[0]:.3f} {s}", flush=True)
    return r

TI.train_step, TI.code_digit_accuracy = train_step, acc
sys.exit(TI.main())
