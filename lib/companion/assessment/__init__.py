"""Borges et al. (PNAS 2024), "Could ChatGPT get an engineering degree?": the measurement
pipeline from released per-question grades to course and program pass rates, and what the
paper's two headline numbers imply on their own.

* `released`: the loader of the released files (grade_per_question.csv, questions.json,
  courses.json) with schema validation and one error class per malformed input;
* `scores`: the paper's metrics (per-strategy accuracy, mean, majority vote, any / all
  strategies, breakdowns, course scores and pass rates under a threshold tau);
* `synthetic`: a labelled synthetic generator with exactly the released schema;
* `implied`: the independence baseline, the exchangeable Beta-Binomial fitted to the two
  headline numbers, its Monte-Carlo self-check and course-pass probabilities.
"""
