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
    tau = 0.0  # no additive part
    conventions = ("the temperatures apply in training and in test_loss; predictions use the plain logits",)
