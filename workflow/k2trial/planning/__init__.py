"""Planning the confirmatory trial: simulation-based power and sample size from the pilot's results (issue 17).

Modules, in the order a plan runs them:

* `scenarios`: the planning configuration (config/planning.yaml) and the pilot's estimates (analysis dataset
  and between-arm results of the randomised pilot) turned into named cells (effect x placebo response x dropout
  x variability x sample size), each with a stable identity and its own seed;
* `simulate`: trials of a cell drawn in seeded blocks with numpy (bivariate normal baseline and end-of-treatment
  values on the VAS scale, clipped and rounded as recorded, stratified randomisation, dropout);
* `vectorised`: the analysis's own between-arm statistics (k2trial.stats.two_sample) over a leading trial axis;
* `power`: power with Monte Carlo standard errors, N per arm for the target powers, the analytic ANCOVA power,
  assurance, the rank-sum asymptotic-relative-efficiency approximation;
* `report`: the power-curve figure and the page "Designing the confirmatory trial".
"""
