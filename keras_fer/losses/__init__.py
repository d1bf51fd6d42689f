"""keras_fer.losses"""
