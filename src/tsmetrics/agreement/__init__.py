"""Inter-rater agreement and labeler accuracy for nominal categories.

Agreement among raters
----------------------
* :func:`cohen_kappa` -- Cohen's (1960) kappa for two raters, with the Fleiss, Cohen & Everitt
  (1969) standard error.
* :func:`percent_agreement` -- raw pairwise agreement among any number of raters.
* :func:`fleiss_kappa` -- Fleiss' (1971) kappa for a fixed number of ratings per item, with the
  standard error under the null of Fleiss, Nee & Landis (1979).
* :func:`krippendorff_alpha_nominal` -- Krippendorff's alpha, nominal metric, from the
  coincidence matrix (Krippendorff 2011); missing ratings allowed.
* :func:`gwet_ac1` -- Gwet's (2008) AC1 with its linearised variance; missing ratings allowed.
* :func:`bootstrap_ci` -- percentile bootstrap interval of any of these, resampling items.

The multi-rater functions take an *items x raters* matrix (rows are items, columns raters): a 2-d
:class:`numpy.ndarray`, a :class:`pandas.DataFrame` or a sequence of equally long rows. Cells
hold hashable labels compared with ``==``; ``None``, ``NaN``, ``pandas.NA`` and ``NaT`` mark a
missing rating. Items that nobody rated are dropped. All of them treat the items as a simple
random sample from a large population of items and the raters as fixed.

Labeler versus gold (e.g. an LLM versus human reviewers)
--------------------------------------------------------
* :func:`labeler_accuracy` -- share of items on which a labeler matches the gold label, with a
  Wilson (1927) score interval.
* :func:`confusion` -- confusion matrix with per-category (per-policy) precision, recall and F1.

References
----------
Cohen, J. (1960). A coefficient of agreement for nominal scales. *Educational and Psychological
Measurement* 20(1), 37-46.

Fleiss, J. L., Cohen, J. and Everitt, B. S. (1969). Large sample standard errors of kappa and
weighted kappa. *Psychological Bulletin* 72(5), 323-327.

Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters. *Psychological
Bulletin* 76(5), 378-382.

Fleiss, J. L., Nee, J. C. M. and Landis, J. R. (1979). Large sample variance of kappa in the case
of different sets of raters. *Psychological Bulletin* 86(5), 974-977.

Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability. Annenberg School for
Communication, University of Pennsylvania, departmental paper 43.

Gwet, K. L. (2008). Computing inter-rater reliability and its variance in the presence of high
agreement. *British Journal of Mathematical and Statistical Psychology* 61(1), 29-48.

Gwet, K. L. (2014). *Handbook of Inter-Rater Reliability*, 4th ed. Advanced Analytics, LLC.

Efron, B. and Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*. Chapman & Hall,
chapter 13 (the percentile interval).

Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference.
*Journal of the American Statistical Association* 22(158), 209-212.
"""

from __future__ import annotations

from tsmetrics.agreement._inputs import Ratings
from tsmetrics.agreement.bootstrap import BootstrapResult, bootstrap_ci
from tsmetrics.agreement.cohen import KappaResult, cohen_kappa
from tsmetrics.agreement.multi_rater import (
    AlphaResult,
    FleissKappaResult,
    GwetAC1Result,
    PercentAgreementResult,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha_nominal,
    percent_agreement,
)
from tsmetrics.agreement.versus_gold import (
    AccuracyResult,
    ConfusionResult,
    confusion,
    labeler_accuracy,
)

__all__ = [
    "AccuracyResult",
    "AlphaResult",
    "BootstrapResult",
    "ConfusionResult",
    "FleissKappaResult",
    "GwetAC1Result",
    "KappaResult",
    "PercentAgreementResult",
    "Ratings",
    "bootstrap_ci",
    "cohen_kappa",
    "confusion",
    "fleiss_kappa",
    "gwet_ac1",
    "krippendorff_alpha_nominal",
    "labeler_accuracy",
    "percent_agreement",
]
