"""Every loss's knobs, by loss name, without importing torch: the ``loss=NAME``
config nodes and the checks of a user's ``loss.KNOB=VALUE`` read them here, so
that a bad value is refused before torch is loaded. The loss classes (in the
modules named below) take their knobs from these tables.

A loss's knob table is its own knobs followed by the common ones it takes
(``weight``, ``ignore_index``, ``reduction``, with torch.nn.CrossEntropyLoss's
meaning).
"""

import math
import numbers

from lossbench.checks import check_number
from lossbench.errors import UserError
from lossbench.losses.knobs import Knob, flag

# The names of the registry's losses, in the order `lossbench losses` lists them.
LOSS_NAMES = (
    "ce", "nll", "balanced_ce", "label_smoothing", "sparse_softmax", "focal", "cosface", "am_softmax", "arcface",
    "l_softmax", "sphereface", "sm_softmax", "anchor", "supcon", "mse", "ldam", "balanced_softmax", "logit_adjusted",
    "poly1", "vs", "cdt", "seesaw", "label_aware_smoothing", "ib",
)

REDUCTIONS = ("mean", "sum", "none")
SCHEMES = ("inverse", "effective")  # the per-class weights derived from the training counts (class_weights.py)
SHAPES = ("concave", "linear", "convex", "exp")  # label-aware smoothing's curves from tail to head


def _plain(value):
    """A tensor's or an array's values as Python numbers and lists (read by
    duck typing, so that torch is not imported); anything else as it is."""
    return value.tolist() if hasattr(value, "tolist") else value


def check_class_weight(key: str, value, num_classes: int | None):
    """null, or one number >= 0 per class (a list, a tuple or a tensor)."""
    if value is None:
        return None
    values = _plain(value)
    if not isinstance(values, (list, tuple)):
        raise UserError(f"{key}={value!r} is invalid: give one number >= 0 per class, e.g. [1.0,2.0,...], or null")
    for v in values:
        check_number(key, _plain(v), 0, why=" (one weight per class)")
    if num_classes is not None and len(values) != num_classes:
        raise UserError(f"{key} has {len(values)} values: it needs one per class ({num_classes})")
    return value


def check_alpha(key: str, alpha, num_classes: int | None):
    """null, a number > 0, one number > 0 per class (a list, a tuple or a tensor), or the name of a scheme."""
    invalid = f"{key}={alpha!r} is invalid: use a number > 0, one per class, or {' | '.join(SCHEMES)}"
    if alpha is None or (isinstance(alpha, str) and alpha in SCHEMES):
        return alpha
    if isinstance(alpha, (bool, str)):
        raise UserError(invalid)
    if isinstance(alpha, (int, float)):
        values = [alpha]
    else:
        try:
            values = [_plain(v) for v in alpha]
        except TypeError:  # not a sequence (a 0-d tensor included)
            raise UserError(invalid) from None
    if not all(isinstance(v, numbers.Real) and math.isfinite(v) and v > 0 for v in values):
        raise UserError(invalid)
    if not isinstance(alpha, (int, float)) and num_classes is not None and len(values) != num_classes:
        raise UserError(f"{key} has {len(values)} values: it needs one per class ({num_classes})")
    return alpha


def check_top_k(key: str, k, num_classes: int | None):
    return check_number(key, k, 1, num_classes, integer=True,
                        why=f" (the number of classes is {num_classes})" if num_classes else "")


def check_power(key: str, power, num_classes: int | None):
    return power if power is None else check_number(key, power, 0.0, low_inclusive=False)


def check_power_with_shape(settings: dict) -> None:
    """label_aware_smoothing: a power with shape=exp, and only then."""
    shape, power = settings["shape"], settings["power"]
    if shape == "exp" and power is None:
        raise UserError("loss.power is needed with loss.shape=exp: a number > 0")
    if shape != "exp" and power is not None:
        raise UserError(f"loss.power={power} applies to loss.shape=exp only (now shape={shape}): drop it, "
                        f"or set loss.shape=exp")


# The knobs every loss has, with torch.nn.CrossEntropyLoss's meaning.
COMMON_SOURCE = "as torch.nn.CrossEntropyLoss"
COMMON_KNOBS = {
    "weight": Knob(None, "a weight per class; the mean divides by the sum of the target weights", COMMON_SOURCE,
                   check=check_class_weight, valid="null | one number >= 0 per class"),
    "ignore_index": Knob(-100, "a target value that counts for nothing", COMMON_SOURCE, integer=True),
    "reduction": Knob("mean", "how the per-sample losses are combined", COMMON_SOURCE, choices=REDUCTIONS),
}


def scale(default: float, source: str) -> Knob:
    return Knob(default, "s: the scale of the cosine logits", source, low=0.0, low_inclusive=False)


def margin(default: float, help: str, source: str) -> Knob:
    return Knob(default, help, source, low=0.0, high=1.0)


def annealing(m: int, base: float, min_: float, gamma: float, power: float, source: str) -> dict[str, Knob]:
    """The knobs of the margin and of lambda's annealing, with the defaults of one of the authors' prototxts."""
    return {
        "m": Knob(m, "the multiplicative angular margin", f"authors' model, {source} (type "
                  f"{ {2: 'DOUBLE', 4: 'QUADRUPLE'}[m]})", low=1, high=8, integer=True),
        "lambda_base": Knob(base, "lambda at step 0", f"the same prototxt (base: {base:g})", low=0.0),
        "lambda_min": Knob(min_, "lambda's floor", "the same prototxt " + (
            f"(lambda_min: {min_:g})" if min_ else "(no lambda_min: the layer's default, 0)"), low=0.0),
        "lambda_gamma": Knob(gamma, "how fast lambda decays with the steps", f"the same prototxt (gamma: {gamma:g})",
                             low=0.0),
        "lambda_power": Knob(power, "the power of lambda's decay", f"the same prototxt (power: {power:g})", low=0.0),
    }


# Each loss's own knobs, by family.
OWN_KNOBS: dict[str, dict[str, Knob]] = {
    # cross_entropy.py: cross entropy and NLL
    "ce": {},
    "nll": {},
    # softmax_variants.py: soft-margin softmax, Poly-1, MSE
    "sm_softmax": {"m": Knob(0.5, "the margin subtracted from the target logit in training",
                             "lossbench's choice, not the paper's: a starting point to tune", low=0.0)},
    "poly1": {
        # below -1 the loss is no longer minimised by p_y = 1
        "epsilon": Knob(1.0, "the weight of the first polynomial term (1 - p_y)",
                        "lossbench's choice, the plain Poly-1 term; the paper reports epsilon = 2 for ImageNet "
                        "classification (as optax's poly_loss_cross_entropy documents)", low=-1.0),
    },
    "mse": {},
    # sparse_softmax.py
    "sparse_softmax": {
        "k": Knob(10, "how many of the largest logits the normaliser sums over",
                  "the sparse-softmax author's code, bojone/SPACES seq2seq_model.py (k_sparse = 10)",
                  check=check_top_k, valid="integer in [1, K]"),
    },
    # label_smoothing.py
    "label_smoothing": {
        "smoothing": Knob(0.1, "e: the probability mass moved off the target",
                          "Szegedy et al. 2016, section 7: e = 0.1 on ImageNet", low=0.0, high=1.0, high_inclusive=False),
        "exclusive": flag(False, "spread e over the other classes only (K - 1), not over all K",
                          "Szegedy et al. 2016, section 7: the uniform u(k) = 1/K over all classes"),
    },
    # focal.py
    "focal": {
        "gamma": Knob(2.0, "focusing: how much easy examples (p_y near 1) are down-weighted; 0 gives CE",
                      "Lin et al. 2017, section 3.2 and Table 1a: gamma = 2", low=0.0),
        "alpha": Knob(None, "a factor a_y on each sample's loss: one for all, one per class, or from the counts",
                      "none: the paper's alpha = 0.25 (Table 1b) weighs the sigmoid form's positives against its "
                      "negatives, which the softmax form does not have",
                      check=check_alpha, valid=f"null | a number > 0 | one per class | {' | '.join(SCHEMES)}",
                      kept=False),
    },
    # anchor.py
    "anchor": {
        "gamma": Knob(0.5, "how much harder negatives scoring above the anchor are pushed",
                      "authors' code, slryou41/AnchorLoss anchor_loss.py (gamma=0.5)", low=0.0),
        "delta": Knob(0.05, "the slack: the anchor is the target's probability minus delta",
                      "authors' code, slryou41/AnchorLoss anchor_loss.py (slack=0.05)", low=0.0, high=1.0),
        "warmup_epochs": Knob(5, "epochs of plain softmax cross entropy first",
                              "authors' code, slryou41/AnchorLoss anchor_loss.py (plain CE while epoch < 5)",
                              low=0, integer=True),
    },
    # cosine_margin.py: CosFace, AM-Softmax, ArcFace
    "cosface": {
        "s": scale(64.0, "Wang et al. 2018 (CosFace), section 4.1: s = 64"),
        "m": margin(0.35, "the cosine margin subtracted from the target's cosine in training",
                    "Wang et al. 2018 (CosFace), section 4.2 and Fig. 5: m = 0.35"),
    },
    "am_softmax": {
        "s": scale(30.0, "authors' code, happynear/AMSoftmax prototxt/face_train_test.prototxt (Scale 30)"),
        "m": margin(0.35, "the cosine margin subtracted from the target's cosine in training",
                    "authors' code, happynear/AMSoftmax prototxt/face_train_test.prototxt (LabelSpecificAdd -0.35)"),
    },
    "arcface": {
        "s": scale(64.0, "Deng et al. 2019, experimental settings: s = 64"),
        "m": margin(0.5, "the angular margin added to the target's angle in training (radians)",
                    "Deng et al. 2019, Table 2 and insightface arcface_torch configs/base.py margin_list (1.0, 0.5, 0.0)"),
        "easy_margin": flag(False, "keep the plain cosine past 90 degrees instead of the margin",
                            "insightface arcface_torch losses.py (easy_margin=False)"),
    },
    # large_margin.py: L-Softmax, SphereFace
    "l_softmax": annealing(2, 1000.0, 0.0, 2e-5, 45.0,
                           "wy1iu/LargeMargin_Softmax_Loss myexamples/cifar10/model/cifar_train_test.prototxt"),
    "sphereface": annealing(4, 1000.0, 5.0, 0.12, 1.0, "wy1iu/sphereface train/code/sphereface_model.prototxt"),
    # supcon.py
    "supcon": {
        "temperature": Knob(0.1, "t: the temperature of the contrastive softmax",
                            "Khosla et al. 2020, section 4.5 (training details): temperature 0.1",
                            low=0.0, low_inclusive=False),
        "lam": Knob(1.0, "the weight of the contrastive term beside cross entropy",
                    "lossbench's choice: one stage, CE + SupCon at equal weight (the paper trains the encoder "
                    "first, then a linear classifier)", low=0.0),
        "projection_dim": Knob(128, "the output size of the projection head",
                               "authors' code, HobbitLong/SupContrast networks/resnet_big.py (feat_dim=128)",
                               low=1, integer=True),
    },
    # balanced_ce.py
    "balanced_ce": {
        "scheme": Knob("effective", "the class weights: inverse frequency 1/n_c, or inverse effective number",
                       "Cui et al. 2019, the class-balanced term 1/E_n (effective number of samples)", choices=SCHEMES),
        "beta": Knob(0.9999, "the effective number's beta: 0 weighs all classes alike, near 1 as inverse frequency",
                     "authors' CIFAR-LT script, richardaecn/class-balanced-loss cifar_im_trainval_cb.sh (BETA=0.9999)",
                     low=0.0, high=1.0, high_inclusive=False),
    },
    # ldam.py
    "ldam": {
        "s": Knob(30.0, "the scale of the cosine logits", "authors' code, kaidic/LDAM-DRW losses.py (s=30)",
                  low=0.0, low_inclusive=False),
        "max_m": Knob(0.5, "the margin of the rarest class; the others' shrink as n_c^(-1/4)",
                      "authors' code, kaidic/LDAM-DRW losses.py (max_m=0.5)", low=0.0, high=1.0),
    },
    # logit_adjustment.py: Balanced Softmax, logit adjustment
    "balanced_softmax": {},
    "logit_adjusted": {"tau": Knob(1.0, "the weight of the log prior added to the logits",
                                   "authors' code, google-research logit_adjustment/main.py (flag tau=1.0)", low=0.0)},
    # vector_scaling.py
    "vs": {
        "gamma": Knob(0.3, "the power of the per-class scale (n_k/n_max)^gamma; 0: no scaling",
                      "authors' code, orparask/VS-Loss class_imbalance/train.py (--gamma 0.3)", low=0.0),
        "tau": Knob(1.0, "the weight of the log prior added to the logits; 0: no shift",
                    "authors' code, orparask/VS-Loss class_imbalance/train.py (--tau 1.0)", low=0.0),
    },
    # class_temperature.py
    "cdt": {
        "gamma": Knob(0.3, "the power of the class temperatures (n_max/n_k)^gamma; 0 gives CE",
                      "the paper tunes gamma per dataset (CIFAR-10 in [0, 0.4]); 0.3 as the VS-Loss authors' and "
                      "BagofTricks-LT's code run CDT", low=0.0),
    },
    # seesaw.py
    "seesaw": {
        "p": Knob(0.8, "the power of the mitigation factor (N_j/N_y)^p: how much rarer classes are spared",
                  "authors' code as mmpretrain ships it, mmpretrain/models/losses/seesaw_loss.py (p=0.8)", low=0.0),
        "q": Knob(2.0, "the power of the compensation factor (s_j/s_y)^q: how much classes scored above y are punished",
                  "the same file (q=2.0)", low=0.0),
        "eps": Knob(1e-2, "the floor of s_y in the score ratio", "the same file (eps=1e-2)",
                    low=0.0, high=1.0, low_inclusive=False),
    },
    # label_aware_smoothing.py
    "label_aware_smoothing": {
        "smooth_head": Knob(0.3, "the smoothing of the most frequent class",
                            "authors' CIFAR-10-LT (imbalance 100) config, dvlab-research/MiSLAS config/cifar10/"
                            "cifar10_imb001_stage2_mislas.yaml (smooth_head 0.3; 0.4 for CIFAR-100-LT)",
                            low=0.0, high=1.0, high_inclusive=False),
        "smooth_tail": Knob(0.0, "the smoothing of the rarest class",
                            "the same config (smooth_tail 0.0; 0.1 for CIFAR-100-LT)",
                            low=0.0, high=1.0, high_inclusive=False),
        "shape": Knob("concave", "the curve f from the tail's smoothing to the head's",
                      "authors' code, dvlab-research/MiSLAS methods.py (shape='concave')", choices=SHAPES),
        "power": Knob(None, "the power of the exp shape, r^power (only with shape=exp)",
                      "authors' code (power=None: only the exp shape takes one)",
                      check=check_power, valid="null | (0, inf), with shape=exp"),
    },
    # influence_balanced.py
    "ib": {
        "alpha": Knob(1000.0, "the scale of the loss over the influence",
                      "authors' training scripts, pseulki/IB-Loss (--alpha 1000; the class default, 10000, is not used)",
                      low=0.0, low_inclusive=False),
        "epsilon": Knob(1e-3, "added to the influence, so that a sample of no influence stays finite",
                        "authors' code, pseulki/IB-Loss losses.py (epsilon = 0.001)", low=0.0, low_inclusive=False),
        "reweight": flag(True, "the class factor w_c (inverse frequency, summing to K)",
                         "authors' CIFAR runs, pseulki/IB-Loss cifar_train.py (IBReweight)"),
        "warmup_epochs": Knob(100, "epochs of plain cross entropy first",
                              "authors' CIFAR setting, pseulki/IB-Loss opts.py (start_ib_epoch 100 of 200 epochs)",
                              low=0, integer=True),
    },
}

# The common knobs a loss takes where it does not take them all.
COMMON_KNOBS_TAKEN = {
    "balanced_ce": ("ignore_index", "reduction"),  # the class weights are the loss's own
}

# Checks of knobs together, run once each knob is checked on its own.
JOINT_CHECKS = {
    "label_aware_smoothing": check_power_with_shape,
}


def check_loss_name(name: str) -> str:
    if name not in LOSS_NAMES:
        raise UserError(f"loss={name!r} is unknown: valid losses are {', '.join(LOSS_NAMES)}")
    return name


def own_knobs(name: str) -> dict[str, Knob]:
    """The loss's own knobs, without the common ones."""
    return OWN_KNOBS[check_loss_name(name)]


def common_knobs(name: str) -> tuple[str, ...]:
    """The common knobs the loss takes."""
    return COMMON_KNOBS_TAKEN.get(check_loss_name(name), tuple(COMMON_KNOBS))


def knob_table(name: str) -> dict[str, Knob]:
    """Every knob of the loss: its own, then the common ones it takes."""
    return {**own_knobs(name), **{key: COMMON_KNOBS[key] for key in common_knobs(name)}}


def checked_knobs(name: str, given: dict, num_classes: int | None = None) -> dict:
    """Every knob's value, checked: ``given`` where given, else the default."""
    table = knob_table(name)
    unknown = [k for k in given if k not in table]
    if unknown:
        raise UserError(f"loss.{unknown[0]} is not a knob of {name}: its knobs are {', '.join(table)}")
    settings = {key: knob.checked(key, given.get(key, knob.default), num_classes) for key, knob in table.items()}
    if name in JOINT_CHECKS:
        JOINT_CHECKS[name](settings)
    return settings


def knob_defaults(name: str) -> dict:
    """The knobs of a loss with their defaults."""
    return {key: knob.default for key, knob in knob_table(name).items()}


def config_node(name: str) -> dict:
    """The ``loss=NAME`` config: the name and every knob at its default."""
    return {"name": name, **knob_defaults(name)}
