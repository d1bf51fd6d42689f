"""Face detection and cropping (keras_fer.faces)."""
