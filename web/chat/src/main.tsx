/** Entry point: read the page config, resume a stored session or show the login form. */
import { render } from "preact";
import { loadPageConfig } from "./session.ts";
import { App } from "./ui/app.tsx";
import "./style.css";

const config = await loadPageConfig();
const root = document.getElementById("app")!;
root.textContent = "";
render(<App config={config} />, root);
