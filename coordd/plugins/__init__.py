"""The pluggy plugin host, the classifier chain and the built-in keyword classifier.
"""
