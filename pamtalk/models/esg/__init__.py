"""The ESG model: a reference methodology (the calculator every score is explained by), the
published factors it uses, a generator of realistic Korean farm profiles, the feature vector
with its missing-value mask, and the network that estimates scores with uncertainty bands.
"""
