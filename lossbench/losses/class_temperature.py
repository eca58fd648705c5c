"""Class-dependent temperatures, CDT (Ye et al. 2020, "Identifying and
Compensating for Feature Deviation in Imbalanced Deep Learning"): cross entropy
on each logit divided by its class's temperature,

    l = CE(z_k / a_k, y),  a_k = (n_max / n_k)^gamma,

so that rare classes, whose features drift at test time, must reach larger
logits in training. The temperatures are dropped to predict. It is the
vector-scaling loss without its additive part (tau = 0).
"""

from lossbench.losses.vector_scaling import VSLoss


class CDTLoss(VSLoss):
    name = "cdt"
    description = "cross entropy on logits divided by class temperatures (n_max/n_k)^gamma"
    formula = "l = CE(z_k / a_k),  a_k = (n_max/n_k)^gamma"
    paper = "Ye et al. 2020, Identifying and Compensating for Feature Deviation in Imbalanced Deep Learning"
    knob_ranges = {"gamma": "[0, inf)"}
    defaults_from = {
        "gamma": "the paper tunes gamma per dataset (CIFAR-10 in [0, 0.4]); 0.3 as the VS-Loss authors' and "
                 "BagofTricks-LT's code run CDT",
    }
    conventions = ("the temperatures apply in training and in test_loss; predictions use the plain logits",)

    def __init__(self, class_counts=None, gamma: float = 0.3, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(class_counts, gamma, 0.0, weight, ignore_index, reduction)
