"""What seed 002's attention modules do to a trained ResNet18 before any training.

    python benchmarks/attention_at_init.py --data ../shared/data [--source zoo:resnet18.fer2013]
        [--per-class 60] [--seed 0]

Inserts each module (BAM, HFC, LFC, HFC+LFC, HFC+LFC+HL: ``keras_fer.recipes.hfc_attention``'s
variants, 48x48 with the relative cutoff) into the source network, copies the source's
weights by layer path (``keras_fer.zoo.transfer_weights``, as ``init_mode="layers"``) and, with
the modules at the paper's random initialisation and with ``identity_init=True``, measures on
a class-stratified share of FER2013 PublicTest (the source's own validation rows): accuracy,
agreement with the predictions of the plain network built the same way (vanilla: float32,
weights copied; a source trained in mixed precision computes in bfloat16 as loaded, a few
predictions apart), and each module's gate (the factor it multiplies the features by) over
256 images: mean, min, max and the share of positions below 0.1. Inference mode (BN moving
statistics), as the fine-tune's first validation sees the network.
"""

import argparse

import numpy as np

VARIANTS = ("bam", "hfc", "lfc", "hfc+lfc", "hfc+lfc+hl")


def images(data_root, per_class, seed):
    import keras

    from keras_fer.datasets.pipeline import make_dataset
    from keras_fer.recipes import _common as C

    test = C.subsample(C.load_dataset("fer2013", data_root, split=["PublicTest"]), per_class,
                       seed)
    ds = make_dataset(test, image_size=(48, 48), channels=1, batch_size=256, shuffle=False,
                      label_mode="int", normalization={"scale": 1.0})
    xs, ys = zip(*[(keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y))
                   for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def gates(model, x):
    """``[(module name, gate array)]`` of the attention modules inside ``model``."""
    import keras

    from keras_fer.layers import BAM, HighFrequencyAttention

    backbone = model.get_layer("resnet18_backbone")
    modules = [layer for layer in backbone.layers
               if isinstance(layer, (BAM, HighFrequencyAttention))]
    if not modules:
        return []
    inputs = keras.Model(backbone.input, [m.input for m in modules]).predict(
        model.get_layer("normalize")(x), verbose=0)
    return [(m.name, keras.ops.convert_to_numpy(
        m.gate(i) if isinstance(m, BAM) else m.attention_scores(i)))
        for m, i in zip(modules, inputs)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="data root holding fer2013/")
    p.add_argument("--source", default="zoo:resnet18.fer2013")
    p.add_argument("--per-class", type=int, default=60, help="PublicTest images per class")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    import keras

    from keras_fer.models import create_model, load_model
    from keras_fer.recipes import hfc_attention as H
    from keras_fer.training.warm_start import ZOO_PREFIX
    from keras_fer.zoo import load, transfer_weights

    arch, options, shape = H.source_architecture(args.source)
    options = {k: v for k, v in options.items() if not k.startswith("attention")}
    source = (load(args.source[len(ZOO_PREFIX):]) if args.source.startswith(ZOO_PREFIX)
              else load_model(args.source))
    x, y = images(args.data, args.per_class, args.seed)
    policy = next(layer for layer in source.get_layer("resnet18_backbone").layers
                  if layer.weights).dtype_policy.name
    print(f"{args.source}: {len(y)} PublicTest images, accuracy "
          f"{np.mean(source.predict(x, verbose=0).argmax(-1) == y):.4f} as loaded ({policy})")
    print("| variant | init | accuracy | agrees with vanilla | gate per module: mean [min, max] "
          "(share < 0.1) |")
    print("|---|---|---|---|---|")
    reference = None
    for variant, identity in [("vanilla", False)] + [(v, i) for v in VARIANTS
                                                     for i in (False, True)]:
        keras.utils.set_random_seed(args.seed)
        # Built and filled as the fine-tune builds it (float32, TrainConfig.init_mode="layers").
        model = create_model(arch, num_classes=int(source.output_shape[-1]), input_shape=shape,
                             **options, **H.arch_options(variant, H.PRETRAINED, identity))
        transfer_weights(source, model, skip_layers=())
        pred = model.predict(x, verbose=0).argmax(-1)
        reference = pred if reference is None else reference
        cells = [f"{g.mean():.2f} [{g.min():.2f}, {g.max():.2f}] ({np.mean(g < 0.1):.0%})"
                 for _, g in gates(model, x[:256])]
        start = "-" if variant == "vanilla" else "identity" if identity else "paper"
        print(f"| {variant} | {start} | {np.mean(pred == y):.4f} | "
              f"{np.mean(pred == reference):.4f} | "
              f"{'; '.join(cells) or '-'} |", flush=True)
        keras.backend.clear_session()

if __name__ == "__main__":
    main()
