"""The book's chapters and parts, as data. Adding a chapter here changes no other chapter's
execution key (see chapters.execution_key): a chapter depends on its own entry only."""

# the book's parts, in order (_toc.yml lists each chapter under its part)
PARTS = ("Training dynamics", "Optimization", "Data & compression", "Collaborative learning", "AI & education")

# minutes: expected wall minutes per scale (smoke/cpu on 2 CPU cores, gpu on one H100/H200; gpu is an
# unmeasured estimate until a gpu run is committed). contract: 2 once a chapter follows contract v2
# (prose numbers from the run, claims over seeds with three verdicts; design.md), else 1.
ENTRIES = [
    dict(id="scaling-cooldown", title="Scaling laws and compute-optimal training beyond fixed durations",
         part="Training dynamics", module="scaling_cooldown", datasets=("tinyshakespeare",),
         minutes={"smoke": 0.7, "cpu": 12, "gpu": 5}, contract=2),
    dict(id="warmup", title="Analyzing and reducing the need for learning-rate warmup in GPT training",
         part="Training dynamics", module="warmup", datasets=("tinyshakespeare",),
         minutes={"smoke": 0.8, "cpu": 14, "gpu": 7}, contract=2),
    dict(id="deep-grokking", title="Deep grokking: would deep neural networks generalize better?",
         part="Training dynamics", module="deep_grokking", datasets=("mnist-test-images", "mnist-test-labels"),
         minutes={"smoke": 0.5, "cpu": 15, "gpu": 15}, contract=2),
    dict(id="cubic-newton", title="Improving stochastic cubic Newton with momentum",
         part="Optimization", module="cubic_newton", datasets=("mnist-test-images", "mnist-test-labels"),
         minutes={"smoke": 0.5, "cpu": 6, "gpu": 5}, contract=2),
    dict(id="fo-maml", title="A first-order meta-learning method with convergence guarantees",
         part="Optimization", module="fo_maml", datasets=(),
         minutes={"smoke": 0.5, "cpu": 13, "gpu": 4}, contract=2),
    dict(id="sparsity-quantization", title="Effective interplay between sparsity and quantization",
         part="Data & compression", module="sparsity_quantization", datasets=("tinyshakespeare",),
         minutes={"smoke": 0.8, "cpu": 9, "gpu": 8}),
    dict(id="hyperinf", title="HyperINF: influence functions with Schulz's hyperpower iteration",
         part="Data & compression", module="hyperinf", datasets=("tinyshakespeare",),
         minutes={"smoke": 0.5, "cpu": 5, "gpu": 8}),
    dict(id="cobo", title="CoBo: collaborative learning as a bilevel problem",
         part="Collaborative learning", module="cobo", datasets=(),
         minutes={"smoke": 0.7, "cpu": 10, "gpu": 8}),
    dict(id="comigs", title="CoMiGS: collaborative LoRA experts, generalists and specialists",
         part="Collaborative learning", module="comigs", datasets=(),
         minutes={"smoke": 0.5, "cpu": 15, "gpu": 5}, contract=2),
    dict(id="ai-assessment", title="Could ChatGPT get an engineering degree? The measurement and its arithmetic",
         part="AI & education", module="ai_assessment", datasets=("nlp4education-courses",),
         minutes={"smoke": 0.3, "cpu": 1, "gpu": 1}, contract=2),
]
