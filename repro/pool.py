"""The image history pool (Shrivastava et al.): D sees a mix of current and past fakes."""

import torch


class ImagePool:
    """Holds up to `size` past fakes. Until full, every query image is stored and returned; after that,
    with probability 1/2 the query is swapped for a random stored image (which it replaces), else
    returned as is. Randomness comes from an explicit torch.Generator so runs are reproducible and the
    pool's state is part of every checkpoint."""

    def __init__(self, size: int = 50):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return images.detach()
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=generator).item() > 0.5:
                slot = int(torch.randint(self.size, (), generator=generator).item())
                out.append(self.images[slot])
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": [img.cpu() for img in self.images]}

    def load_state_dict(self, state: dict, device=None) -> None:
        self.size = state["size"]
        self.images = [img.to(device) for img in state["images"]]
