"""Training: prepared clips → a trained MMFA model (``mmfa-studio prepare``, ``mmfa-studio train``).

What lives where:

  the data      prepare (videos → face crops), prepared (their format and reader), landmarks (per-frame face
                landmarks), framing (where the crops put a face), dataset (augmented source/driving pairs and
                the resumable sampler; pairs chosen for their motion)
  the recipe    config (the ``train:`` section, every key typed)
  the step      step (``GeneratorStep``: every generator-side network once → a typed ``StepOutput``),
                objective (every loss term and its weight, from a ``StepOutput``: a new loss goes here),
                losses (the loss functions themselves), pose_warmup (the optional head-pose warm-up)
  the loop      trainer (``Trainer``: builds the parts, runs the steps, stops and saves), logbook (log lines,
                TensorBoard)
  around it     run_state (networks, optimisers and counters; checkpoint save/load, RNG state, EMA export and
                snapshots), runtime (DDP ranks, device and mixed precision, stop signals, section timing),
                surgery (``--init-from`` an inference checkpoint of another architecture)
  the teacher   expression_fit (``mmfa-studio fit-expression``: the anchor expression VAE and the named controls,
                fitted on the tracked landmarks)
  tools         pack (a run's results in pieces small enough to copy), vgg_slim (a slim perceptual network),
                visualize (TensorBoard image grids); the training benchmark is ``benchmarks/train.py``

Imported only by the CLI (floor 2: it uses model/ and face/ below it, nothing above).
"""
