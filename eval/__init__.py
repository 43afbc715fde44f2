"""eval: the paper's evaluation of a CLIP model (`wit eval`, docs/evaluation.md).

templates.py     the paper's 80 ImageNet prompts, one prompt, the bare name
model.py         the model under evaluation and its tokenizer: a `wit train` run or a checkpoint file
embed.py         image features (OpenCLIP's eval preprocess; in process, or Ray Data batch inference) and text features
zeroshot.py      prompt-ensemble class vectors, logits x100, top-1/top-5/mean per-class recall
retrieval.py     image<->text Recall@K with several captions per image
linear_probe.py  L-BFGS logistic regression with the paper's C sweep; few-shot probes
robustness.py    effective robustness under distribution shift, and its plot
datasets.py      EvalSet and its loaders: offline tasks, CLIP_benchmark WebDataset folders, ImageFolder, Parquet/CSV
tasks/           the offline tasks built from the data `make data` installs (`wit eval data`)
run.py           one task on one dataset -> a record in CLIP_benchmark's shape
report.py        the Markdown table and the Parquet tables `wit sql` reads
neardup/         the image near-duplicate detector (paper Appendix C): augmentations, hash tiers, a contrastive
                 embedder trained on the corpus, threshold calibration (library; the `wit overlap` CLI comes next)
overlap/         the faiss index of training images, caption overlap (MinHash LSH), the overlap statistics and the
                 HTML/Parquet report (library; wired into `wit overlap` next)
"""
