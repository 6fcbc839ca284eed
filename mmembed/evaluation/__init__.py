"""Evaluation: tasks over JSONL manifests, exact ranking metrics, baselines, reports, MTEB adapter.

    data.py      find / check / subsample the manifests --data points at
    tasks.py     t2i, i2t, zeroshot, i2i, bitext, t2t: queries, targets, what is correct
    metrics.py   R@k, MRR, top-1 accuracy on similarity matrices (numpy)
    encoders.py  the Encoder protocol; mmembed models and baselines behind it
    baselines/   e5, ImageNet-label captions, open_clip trained from scratch
    runner.py    encoders x tasks -> TaskResults
    report.py    rich tables, results.json        plots.py  PNG bars and heatmap
    cli.py       `mmembed eval`                   mteb_adapter.py  the mteb encoder protocol
"""
