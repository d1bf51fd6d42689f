"""keras_fer.optimizers"""
