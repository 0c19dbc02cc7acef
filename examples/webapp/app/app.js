// The list is rendered by this script only: the HTML alone shows no items and no count.
const items = ["milk", "bread", "eggs"];

function render() {
  const list = document.getElementById("items");
  list.innerHTML = "";
  for (const item of items) {
    const li = document.createElement("li");
    li.textContent = item;
    list.appendChild(li);
  }
  // BUG: counts one item too few.
  const count = items.length - 1;
  document.getElementById("count").textContent = `${count} item${count === 1 ? "" : "s"}`;
}

document.getElementById("add").addEventListener("click", () => {
  const input = document.getElementById("new-item");
  if (input.value.trim()) {
    items.push(input.value.trim());
    input.value = "";
    render();
  }
});

render();
