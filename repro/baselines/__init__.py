"""The other rows of Tables 2 and 3, one module per config `method`.

    pix2pix   paired U-Net + conditional PatchGAN, GAN + 100 x L1 (the upper bound)
    simgan    adversarial loss + self-regularisation ||x - G(x)||_1, in pixels (SimGAN) or on VGG16
              relu4_2 features (Feature loss + GAN)
    cogan     coupled GANs from one noise vector; translation by optimising z
    bigan     BiGAN / ALI: a generator and an encoder judged jointly

Each module has `build(cfg, device) -> Parts` (nets, optimisers, pools, one training step), which
repro.train.train hands to CycleGAN's own loop (repro.train.train_loop: checkpoints, exact resume, logs;
`PAIRED = True` feeds aligned pairs), and `translator(run, cfg, direction, device)`, called by
repro.translate.generator_from_run.
"""
