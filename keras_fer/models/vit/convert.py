"""timm ViT/DeiT checkpoints -> keras-hub ``ViTBackbone`` (no torch needed).

timm's fused ``attn.qkv`` (3D, D) splits into keras ``MultiHeadAttention``'s query/key/value
kernels (D, heads, head_dim); ``attn.proj`` becomes the output kernel (heads, head_dim, D).
A checkpoint for another grid size (e.g. 224 weights into a 48x48 model) has its position
embedding resampled as timm does (bicubic, antialiased); an RGB patch embedding is summed over
colour for a grey model.
"""

from keras_fer.models import timm_convert as tc


def copy_vit_backbone(backbone, sd):
    """Fills a keras-hub ``ViTBackbone`` from timm ``VisionTransformer`` tensors."""
    embed = backbone.get_layer("vit_patching_and_embedding")
    encoder = backbone.get_layer("vit_encoder")
    tc.copy_conv2d(embed.patch_embedding, sd, "patch_embed.proj", adapt_input=True)
    tc.copy_variable(embed.class_token, sd, "cls_token", embed.name)
    grid = (embed.image_size[0] // embed.patch_size[0], embed.image_size[1] // embed.patch_size[1])
    tc.copy_variable(embed.position_embedding.embeddings, sd, "pos_embed", embed.name,
                     lambda v: tc.fit_position_embedding(v, grid)[0])
    for i, block in enumerate(encoder.encoder_layers):
        prefix = f"blocks.{i}"
        tc.copy_layer_norm(block.layer_norm_1, sd, f"{prefix}.norm1")
        _copy_attention(block.mha, sd, f"{prefix}.attn", block.name)
        tc.copy_layer_norm(block.layer_norm_2, sd, f"{prefix}.norm2")
        tc.copy_dense(block.mlp.dense_1, sd, f"{prefix}.mlp.fc1")
        tc.copy_dense(block.mlp.dense_2, sd, f"{prefix}.mlp.fc2")
    tc.copy_layer_norm(encoder.layer_norm, sd, "norm")


def _copy_attention(mha, sd, prefix, layer_name):
    """timm ``attn.qkv``/``attn.proj`` -> keras ``MultiHeadAttention`` einsum kernels."""
    heads = mha.num_heads
    for index, dense in enumerate((mha.query_dense, mha.key_dense, mha.value_dense)):
        def part(v, index=index, shape=tuple(dense.kernel.shape)):
            dim = v.shape[-1] if v.ndim == 2 else v.shape[0] // 3
            rows = v[index * dim:(index + 1) * dim]
            return rows.T.reshape(shape) if v.ndim == 2 else rows.reshape(heads, -1)

        tc.copy_variable(dense.kernel, sd, f"{prefix}.qkv.weight", layer_name, part)
        if dense.bias is not None:
            tc.copy_variable(dense.bias, sd, f"{prefix}.qkv.bias", layer_name, part)
    out = mha.output_dense
    tc.copy_variable(out.kernel, sd, f"{prefix}.proj.weight", layer_name,
                     lambda v: v.T.reshape(heads, -1, v.shape[0]))
    if out.bias is not None:
        tc.copy_variable(out.bias, sd, f"{prefix}.proj.bias", layer_name)


def load_timm_weights(model, weights, load_head="auto"):
    """Copies a timm ViT/DeiT checkpoint (safetensors file, ``save_for_hf`` folder or mapping
    of arrays) into ``model`` (a keras-fer ViT classifier or its backbone). All or nothing;
    ``load_head`` as in ``timm_convert.copy_classifier_head``. Returns whether the head
    was loaded."""
    return tc.load_checkpoint(model, weights, copy_vit_backbone, head_prefix="head",
                              load_head=load_head)
